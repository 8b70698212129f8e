"""A run's life: create (parameters checked), start and resume (enqueue the canvas), cancel,
fail, finish, wait."""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Sequence

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from core.audit import audit_record
from core.models import AuditAction
from dissect.models import DissectionRun, Image, ImageSet, Network, Shard
from dissect.parameters import DEFAULTS, RUN_OPTIONS, RUN_PARAMETERS
from dissect.run_progress import progress_set
from dissect.services.common import PipelineConflict, PipelineError, active_run, code_version
from dissect.services.networks import network_load

logger = logging.getLogger(__name__)


def options_clean(options: dict) -> dict:
    """``options`` checked against RUN_OPTIONS and converted to their types; raises
    PipelineError naming the first unknown or out-of-range option."""
    return RUN_OPTIONS.clean(options, partial=True, error=PipelineError)


def _check_layers(network: Network, layers: Sequence[str]) -> list[str]:
    """Validate layer names: aliases are checked from the row; anything else loads the network
    (module paths). Raises PipelineError listing the valid names."""
    names = [name.strip() for name in layers if name.strip()]
    if not names:
        raise PipelineError("layers: choose at least one layer (e.g. conv5,pool5)", field="layers")
    if len(set(names)) != len(names):
        raise PipelineError(f"layers: a layer was chosen twice: {', '.join(names)}", field="layers")
    if all(name in network.layer_aliases for name in names):
        return names
    from dissect.networks import NetworkLoadError, resolve_layers

    net = network_load(network=network)
    try:
        resolve_layers(net, names)
    except NetworkLoadError as exc:
        valid = ", ".join(network.layer_aliases) or "see `python manage.py layers NETWORK`"
        raise PipelineError(
            f"layers: {exc}. Valid layer names for network {network.name}: {valid} "
            f"(all module paths: `python manage.py layers {network.name}`)",
            field="layers",
        ) from exc
    return names


# How large an image set should be for a given K (docs/pipeline.md, "How many images"): a unit's
# top-K images are meant to be its rare, strongest responses, so K should be at most a tenth of
# the set; and its controls come from outside the top-K (the lowest-scoring images), so K +
# controls can never exceed it.
IMAGES_PER_TOP_IMAGE = 10
# The smallest K a crowd task can use: a task shows at least 10 of the unit's own tiles.
MIN_USEFUL_TOP_K = 10


def images_needed(*, top_k: int, controls: int) -> int:
    """The recommended size of an image set for top-``top_k`` plus ``controls`` controls."""
    return max(IMAGES_PER_TOP_IMAGE * top_k, top_k + controls)


def adapted_top_k(*, n_images: int, controls: int) -> int:
    """The K a run picks for itself on a small set: a tenth of the set, not below
    MIN_USEFUL_TOP_K, never above the default, always leaving room for the controls
    (below 1: the set cannot hold even one top image)."""
    k = min(DEFAULTS["top_k"], max(n_images // IMAGES_PER_TOP_IMAGE, MIN_USEFUL_TOP_K))
    return min(k, n_images - controls)


def top_k_fit(
    *, n_images: int, top_k: int | None, controls: int, image_set: str = "the image set"
) -> tuple[int, list[str]]:
    """(K, notes) for an image set of ``n_images`` usable images. ``top_k`` None means the
    default K, adapted to the set: lowered to a tenth of it (not below 10, nor past what leaves
    room for the controls), with a note that says so. An explicit ``top_k`` is kept when top-K
    and the controls fit (a note warns when the set is smaller than recommended) and refused
    otherwise, with the numbers and what to do. Controls are never dropped."""
    default = DEFAULTS["top_k"]
    wanted = default if top_k is None else top_k
    recommended = images_needed(top_k=wanted, controls=controls)
    if top_k is None and n_images < recommended:
        k = adapted_top_k(n_images=n_images, controls=controls)
        if k < 1:
            raise PipelineError(
                f"image set {image_set} has {n_images} usable images: too few for even one top "
                f"image plus {controls} controls; add images (at least "
                f"{images_needed(top_k=MIN_USEFUL_TOP_K, controls=controls)} for top-"
                f"{MIN_USEFUL_TOP_K}) or lower --controls",
                field="top_k",
            )
        return k, [
            f"top-K adapted: image set {image_set} has {n_images} usable images, too few for "
            f"the default top-{default} + {controls} controls (recommended: "
            f"{recommended} images); this run keeps top-{k} + {controls} controls per unit. "
            f"For top-{default}, use at least {recommended} images (docs/pipeline.md)."
        ]
    if wanted + controls > n_images:
        fits = adapted_top_k(n_images=n_images, controls=controls)
        hint = f"top-K {fits}, what leaving it out picks" if fits >= 1 else "fewer controls"
        raise PipelineError(
            f"top_k: image set {image_set} has {n_images} usable images, too few for top-"
            f"{wanted} + {controls} controls (each unit's controls come from outside its top "
            f"images, so at least {wanted + controls} are needed and {recommended} recommended); "
            f"add images, lower top-K (e.g. {hint}) or leave it out to adapt it to the set",
            field="top_k",
        )
    if n_images < recommended:
        return wanted, [
            f"small image set: top-{wanted} of {n_images} usable images is "
            f"{100 * wanted / n_images:.0f}% of the set, so top images are barely selective; "
            f"for top-{wanted}, use at least {recommended} images (docs/pipeline.md)."
        ]
    return wanted, []


def run_create(
    *,
    network: Network,
    image_set: ImageSet,
    layers: Sequence[str],
    top_k: int | None = None,
    controls: int = DEFAULTS["controls"],
    shard_size: int = DEFAULTS["shard_size"],
    segmentation: str = DEFAULTS["segmentation"],
    receptive_field: bool = DEFAULTS["receptive_field"],
    device: str = DEFAULTS["device"],
    tile_px: int = DEFAULTS["tile_px"],
    batch_size: int = DEFAULTS["batch_size"],
    workers: int = DEFAULTS["workers"],
    seed: int = RUN_PARAMETERS["seed"].default,
    options: dict | None = None,
    created_by=None,
) -> DissectionRun:
    """Validate the parameters and create a pending run with its shards (``shard_size``
    usable images each, in image id order). ``top_k`` None: the default, adapted to the image
    set's size (``top_k_fit``; the run's ``parameters["notes"]`` say so). ``options`` sets advanced parameters
    (dissect.parameters.RUN_OPTIONS). Raises PipelineError naming the bad parameter, with the
    message every door gives (dissect.parameters)."""
    options = options_clean(options or {})
    checked = RUN_PARAMETERS.clean(
        {"top_k": DEFAULTS["top_k"] if top_k is None else top_k, "controls": controls, "shard_size": shard_size,
         "segmentation": segmentation, "receptive_field": receptive_field, "device": device,
         "tile_px": tile_px, "batch_size": batch_size, "workers": workers, "seed": seed},
        error=PipelineError,
    )  # fmt: skip
    shard_size, seed = checked["shard_size"], checked.pop("seed")
    names = _check_layers(network, layers)
    ids = list(
        image_set.images.filter(status=Image.Status.OK).order_by("id").values_list("id", flat=True)
    )
    n_images = len(ids)
    if n_images == 0:
        raise PipelineError(
            f"image set {image_set.name} has no usable images ({image_set.bad_count} bad files); "
            "scan a folder with images first (`python manage.py scan_images`)",
            field="image_set",
        )
    checked["top_k"], notes = top_k_fit(
        n_images=n_images,
        top_k=None if top_k is None else checked["top_k"],
        controls=checked["controls"],
        image_set=image_set.name,
    )
    parameters = {
        **DEFAULTS,
        **options,
        **checked,
        "n_images": n_images,
        # Said on the command line, the run page and in the API (parameters.notes).
        "notes": notes,
        # Shard i covers image ids [bounds[i], bounds[i+1]): fixed at creation, so an image
        # found broken by one shard (and marked bad) never shifts another shard's slice.
        "shard_bounds": [ids[i] for i in range(0, n_images, shard_size)] + [ids[-1] + 1],
        "image_set_sha256": image_set.manifest_sha256,
        "weights_sha256": network.weights_sha256,
    }
    with transaction.atomic(durable=True):
        run = DissectionRun.objects.create(
            network=network,
            image_set=image_set,
            layers=names,
            parameters=parameters,
            seed=seed,
            created_by=created_by if getattr(created_by, "pk", None) else None,
            progress={"extract": {"done": 0, "total": n_images}},
        )
        Shard.objects.bulk_create(
            Shard(
                run=run,
                index=i,
                image_count=min(shard_size, n_images - i * shard_size),
            )
            for i in range(math.ceil(n_images / shard_size))
        )
        audit_record(
            actor=created_by, action=AuditAction.RUN_CREATE, target=run,
            data={"network": network.name, "image_set": image_set.name, "layers": names},
        )  # fmt: skip
    return run


# Web requests in the embedded default run the eager pipeline in a thread, so the page returns
# and shows progress; tests switch it off to run the pipeline inline.
EAGER_WEB_THREADS = True


def run_start(*, run: DissectionRun, background: bool = False) -> DissectionRun:
    """Mark the run running and enqueue its pipeline after the transaction commits. Eager mode
    (the embedded default) runs it right there, in this process; with ``background=True`` (web
    requests) in a thread instead. Shards already stored are not redone."""
    if run.status in (DissectionRun.Status.DONE, DissectionRun.Status.IMPORTED):
        raise PipelineConflict(f"run {run.pk} is {run.status}: nothing to start")
    device = run.parameters.get("device", "auto")
    run.device = "" if device == "auto" else device  # the worker records what it resolved
    run.status = DissectionRun.Status.RUNNING
    run.stage = "extract"
    run.error = ""
    run.code_version = code_version()
    run.started_at = run.started_at or timezone.now()
    run.finished_at = None
    # Each start is a new attempt: tasks still queued from an earlier one then do nothing.
    run.parameters = {**run.parameters, "attempt": int(run.parameters.get("attempt", 0)) + 1}
    run.save(
        update_fields=["device", "status", "stage", "error", "code_version", "started_at",
                       "finished_at", "parameters"]
    )  # fmt: skip
    pending = _shards_to_do(run)
    done_images = sum(s.image_count for s in run.shards.all() if s.index not in pending)
    progress_set(run.pk, "extract", done=done_images, total=run.parameters.get("n_images", 0))

    run_id = run.pk
    if background and settings.CELERY_TASK_ALWAYS_EAGER and EAGER_WEB_THREADS:
        thread = threading.Thread(
            target=_enqueue_in_thread, args=(run_id, pending), name=f"dissect-run-{run_id}",
            daemon=True,
        )  # fmt: skip
        transaction.on_commit(thread.start)
    else:
        transaction.on_commit(lambda: _enqueue(run_id, pending))
    return run


def _enqueue(run_id: int, pending: list[int]) -> None:
    from dissect import tasks

    tasks.enqueue_run(run_id=run_id, shard_indexes=pending)


def _enqueue_in_thread(run_id: int, pending: list[int]) -> None:
    from django.db import connection

    try:
        _enqueue(run_id, pending)
    except Exception:  # the task already stored the error on the run row
        logger.exception("run %s failed", run_id)
    finally:
        connection.close()


def _shards_to_do(run: DissectionRun) -> list[int]:
    """Shards without a stored state file: a done shard whose file went missing is redone."""
    from dissect.artifacts import artifact_exists

    todo = []
    for shard in run.shards.all().order_by("index"):
        if shard.status == Shard.Status.DONE and artifact_exists(shard.state_path):
            continue
        todo.append(shard.index)
    return todo


def run_resume(
    *, run: DissectionRun, background: bool = False, actor=None, force: bool = False
) -> DissectionRun:
    """Continue a failed, cancelled, interrupted or stalled run from the shards already stored.
    A running run that is still making progress (``dissect.watchdog.run_in_flight``) is refused,
    so no shard a live worker is extracting runs twice; the watchdog resumes with ``force``."""
    from dissect.watchdog import run_in_flight

    if run.status == DissectionRun.Status.DONE:
        raise PipelineConflict(f"run {run.pk} is already done: nothing to resume")
    if run.status == DissectionRun.Status.IMPORTED:
        raise PipelineConflict(f"run {run.pk} was imported (labels only): it cannot be resumed")
    if not force and run_in_flight(run):
        raise PipelineConflict(
            f"run {run.pk} is running and made progress in the last few minutes (stage "
            f"{run.stage or '?'}): a worker is on it, so resuming now would do its work twice. "
            "Wait for it; if it stalls, the watchdog resumes it, or cancel it first."
        )
    with transaction.atomic(durable=True):
        audit_record(
            actor=actor, action=AuditAction.RUN_RESUME, target=run,
            data={"from_status": run.status, "attempt": int(run.parameters.get("attempt", 0)) + 1,
                  **({"by": "watchdog"} if force else {})},
        )  # fmt: skip
        return run_start(run=run, background=background)


def run_cancel(*, run: DissectionRun, actor=None) -> DissectionRun:
    """Cancel a pending or running run: workers stop at their next batch; stored shards stay,
    so ``--resume`` can continue it later."""
    if run.status not in (DissectionRun.Status.PENDING, DissectionRun.Status.RUNNING):
        raise PipelineConflict(f"run {run.pk} is {run.status}: only pending or running runs cancel")
    with transaction.atomic(durable=True):
        DissectionRun.objects.filter(pk=run.pk).update(
            status=DissectionRun.Status.CANCELLED, finished_at=timezone.now()
        )
        audit_record(
            actor=actor, action=AuditAction.RUN_CANCEL, target=run, data={"from_status": run.status}
        )
    run.refresh_from_db()
    return run


def run_fail(*, run_id: int, error: str) -> None:
    """Record a failure (the stage it happened in stays on the row)."""
    DissectionRun.objects.filter(pk=run_id).exclude(status=DissectionRun.Status.CANCELLED).update(
        status=DissectionRun.Status.FAILED, error=error[:10_000], finished_at=timezone.now()
    )


def run_finish(*, run_id: int, attempt: int | None = None) -> None:
    """Mark a run done (the last step of the pipeline)."""
    if active_run(run_id, attempt) is None:
        return
    DissectionRun.objects.filter(pk=run_id, status=DissectionRun.Status.RUNNING).update(
        status=DissectionRun.Status.DONE, stage="done", finished_at=timezone.now()
    )


def run_wait(*, run: DissectionRun, timeout_s: float = 3600, poll_s: float = 1.0) -> DissectionRun:
    """Block until the run is done (with workers; eager runs are already finished). Raises
    PipelineError when it fails, is cancelled or takes longer than ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        run.refresh_from_db()
        if run.status == DissectionRun.Status.DONE:
            return run
        if run.status in (DissectionRun.Status.FAILED, DissectionRun.Status.CANCELLED):
            raise PipelineError(
                f"run {run.pk} {run.status}: {run.error or 'no error text'}; fix the cause and "
                f"resume it with `python manage.py dissect --resume {run.pk}`"
            )
        if time.monotonic() > deadline:
            raise PipelineError(
                f"run {run.pk} is still {run.status} after {timeout_s:.0f} s; are the Celery "
                "workers running (`celery -A config worker -Q gpu,cpu`)?"
            )
        time.sleep(poll_s)
