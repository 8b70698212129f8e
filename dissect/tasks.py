"""Celery tasks of a dissection run: thin wrappers over ``dissect.services`` taking ids.

Routing (config/celery.py): extract_shard and receptive_field_layer go to queue ``gpu``,
merge_run, render_units and render_montages to queue ``cpu``. A run is a chain of chords: every
shard (one pass: top-K, controls, quantiles, kept maps and, with pixel labels, the IoU counts)
-> merge (rows, automatic labels), (receptive field per layer,) every render part (from the
stored maps, no forward pass) -> montages and finish. ``auto_label_run`` (queue gpu) labels runs
dissected without labels; it is not part of a run's canvas. Each task is idempotent (a redelivered shard
overwrites its own file; merge and render rewrite the same rows and content-addressed files),
so a killed worker's task is simply redone. Transient database or broker errors are retried
with exponential backoff; any other error marks the run failed with the error text.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from celery import chain, chord, group, shared_task
from django.db import DatabaseError, InterfaceError, OperationalError

from dissect import run_progress, services

logger = logging.getLogger(__name__)

_RETRY = {
    "bind": True,
    "autoretry_for": (OperationalError, InterfaceError, ConnectionError),
    "retry_backoff": 5,
    "retry_backoff_max": 300,
    "retry_jitter": True,
    "max_retries": 5,
}


def _guarded(run_id: int, work: Callable[[], object]):
    """Run ``work``; a cancelled run ends quietly, a permanent error fails the run (with the
    message a user can act on) and is re-raised so the chord stops."""
    try:
        return work()
    except run_progress.RunCancelled:
        logger.info("run %s was cancelled; stopping", run_id)
        return None
    except (OperationalError, InterfaceError, ConnectionError):
        raise  # retried by autoretry_for
    except DatabaseError as exc:
        services.run_fail(run_id=run_id, error=f"database error: {exc}")
        raise
    except services.PipelineError as exc:
        services.run_fail(run_id=run_id, error=str(exc))
        raise
    except Exception as exc:
        services.run_fail(run_id=run_id, error=f"{type(exc).__name__}: {exc}")
        raise


@shared_task(name="dissect.tasks.extract_shard", **_RETRY)
def extract_shard(self, run_id: int, shard_index: int, attempt: int | None = None) -> None:
    """Forward pass over one shard; stores its partial state file (queue gpu)."""
    _guarded(
        run_id,
        lambda: services.shard_extract(run_id=run_id, shard_index=shard_index, attempt=attempt),
    )


@shared_task(name="dissect.tasks.merge_run", **_RETRY)
def merge_run(self, run_id: int, attempt: int | None = None) -> None:
    """Combine the shard states into Layer/Unit/UnitImage rows (queue cpu)."""
    _guarded(run_id, lambda: services.run_merge(run_id=run_id, attempt=attempt))


@shared_task(name="dissect.tasks.receptive_field_layer", **_RETRY)
def receptive_field_layer(self, run_id: int, layer_name: str, attempt: int | None = None) -> None:
    """Empirical receptive field of one layer by occlusion (queue gpu)."""
    _guarded(
        run_id,
        lambda: services.run_receptive_field(run_id=run_id, layer_name=layer_name, attempt=attempt),
    )


@shared_task(name="dissect.tasks.render_units", **_RETRY)
def render_units(
    self, run_id: int, attempt: int | None = None, part: int = 0, parts: int = 1
) -> None:
    """Tiles of one part of the run's top images (queue cpu)."""
    _guarded(
        run_id,
        lambda: services.run_render(run_id=run_id, attempt=attempt, part=part, parts=parts),
    )


@shared_task(name="dissect.tasks.render_montages", **_RETRY)
def render_montages(self, run_id: int, attempt: int | None = None) -> None:
    """Every unit's montage from its tiles, then the run is done (queue cpu)."""

    def work():
        services.run_montages(run_id=run_id, attempt=attempt)
        services.run_finish(run_id=run_id, attempt=attempt)

    _guarded(run_id, work)


@shared_task(name="dissect.tasks.auto_label_run", **_RETRY)
def auto_label_run(self, run_id: int, layers: list[str] | None = None) -> int | None:
    """Best-IoU labels per unit from the image set's pixel labels, for a run dissected without
    them (queue gpu; new runs get them from their one pass). Idempotent (it replaces the layers'
    AutoLabel rows). Inside a running run's chain a failure fails the run
    with its message, like the other stages; on a finished run it only fails this task."""
    from dissect.autolabel import run_auto_labels
    from dissect.models import DissectionRun

    work = lambda: run_auto_labels(run_id=run_id, layers=layers)  # noqa: E731
    status = DissectionRun.objects.filter(pk=run_id).values_list("status", flat=True).first()
    if status == DissectionRun.Status.RUNNING:
        return _guarded(run_id, work)
    return work()


def run_signature(*, run_id: int, shard_indexes: Sequence[int], layers: Sequence[str],
                  receptive_field: bool, render_parts: int = 1,
                  attempt: int | None = None):  # fmt: skip
    """The run's Celery canvas: chord(shards -> merge), optional RF per layer, then
    chord(render parts -> montages). Automatic labels come out of the shards' one pass and the
    merge (no second pass). ``attempt`` (the run's start counter) lets tasks left in the queue
    from an earlier start recognize themselves as stale and do nothing."""
    merge = merge_run.si(run_id, attempt)
    steps = []
    if shard_indexes:
        steps.append(chord([extract_shard.si(run_id, i, attempt) for i in shard_indexes], merge))
    else:
        steps.append(merge)  # every shard is stored already: straight to the merge
    if receptive_field:
        steps.append(group([receptive_field_layer.si(run_id, name, attempt) for name in layers]))
    parts = [render_units.si(run_id, attempt, part, render_parts) for part in range(render_parts)]
    steps.append(chord(parts, render_montages.si(run_id, attempt)))
    return chain(*steps)


def enqueue_run(*, run_id: int, shard_indexes: Sequence[int]) -> None:
    """Send the run's canvas (called from ``transaction.on_commit``; eager mode runs it here)."""
    from dissect.models import DissectionRun

    run = DissectionRun.objects.get(pk=run_id)
    signature = run_signature(
        run_id=run_id,
        shard_indexes=list(shard_indexes),
        layers=list(run.layers),
        receptive_field=bool(run.parameters.get("receptive_field")),
        render_parts=services.render_parts(run),
        attempt=run.parameters.get("attempt"),
    )
    signature.apply_async()


@shared_task(name="dissect.tasks.watchdog_runs")
def watchdog_runs() -> dict:
    """Beat, every minute (queue cpu): find stalled runs, record it on them and resume them
    (``dissect.watchdog``)."""
    from dissect.watchdog import watchdog_sweep

    return {str(k): v for k, v in watchdog_sweep().items()}


@shared_task(name="dissect.tasks.verification_sample", **_RETRY)
def verification_sample(
    self, run_id: int, unit_concepts: dict, n: int, seed: int, checks: int = 2
) -> str:
    """Verification samples over the whole activation range of a finished run's units
    (``dissect.verification_sampling``; queue gpu: one scoring pass per layer). Stores the
    samples as one JSON file in media storage and returns its name. Idempotent (the same
    arguments draw the same sample and write the same content-addressed files)."""
    from dissect.storage import save_content_addressed
    from dissect.verification_sampling import sample_run_units, samples_to_json

    samples = sample_run_units(
        run_id=run_id,
        unit_concepts={int(k): str(v) for k, v in unit_concepts.items()},
        n=n,
        seed=seed,
        checks=checks,
    )
    return save_content_addressed(samples_to_json(samples), kind="verification", ext="json")
