"""The run watchdog: no run stalls silently.

A worker whose main process dies (``kill -9``, an OOM kill, a lost container) leaves its task
unacknowledged; the broker redelivers it only after the visibility timeout (``config.celery``:
the task time limit plus a margin). Meanwhile the run would show ``running`` with no error.
``watchdog_sweep`` (a beat task every minute, ``dissect.tasks.watchdog_runs``) closes that gap:

- each sweep fingerprints every running run's visible progress (stage, progress counters, done
  shards, timings) and keeps the fingerprint and the time it last changed in
  ``run.parameters['watchdog']``;
- a run whose fingerprint has not changed for ``CROWDDISSECT['RUN_STALL_SECONDS']`` (default
  600 s: far longer than any batch, so only a dead or hung worker gets there) is stalled: the
  sweep records it in ``run.parameters['stalled']`` (stage, since, how many recoveries; kept
  until the run moves again) and resumes it as ``dissect --resume`` would (a new attempt: the shards already stored are kept,
  the lost ones are redone, and the dead worker's redelivered message belongs to the old attempt
  and does nothing);
- after ``RUN_STALL_RECOVERIES`` (default 3) automatic resumes the run is marked failed with a
  message that says what to do, instead of looping.

``run_in_flight`` tells ``run_resume`` when a run is still making progress, so a manual
``--resume`` never extracts a shard that a live worker is extracting right now. The run page,
its status JSON and ``/healthz`` show ``stalled`` (``stalled_runs``).
"""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from dissect.models import DissectionRun, Shard

logger = logging.getLogger(__name__)


def stall_seconds() -> int:
    return int(getattr(settings, "CROWDDISSECT", {}).get("RUN_STALL_SECONDS", 600))


def stall_recoveries() -> int:
    return int(getattr(settings, "CROWDDISSECT", {}).get("RUN_STALL_RECOVERIES", 3))


def fingerprint(run: DissectionRun) -> str:
    """A digest of everything that moves while a run makes progress."""
    done = Shard.objects.filter(run=run, status=Shard.Status.DONE).count()
    visible = {
        "stage": run.stage,
        "progress": run.progress,
        "timings": run.timings,
        "shards_done": done,
    }
    text = json.dumps(visible, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _parse(value: str | None) -> datetime | None:
    try:
        return datetime.fromisoformat(value) if value else None
    except (TypeError, ValueError):
        return None


def last_change(run: DissectionRun) -> datetime | None:
    """When the watchdog last saw the run's progress change (None: never observed)."""
    seen = (run.parameters or {}).get("watchdog") or {}
    return _parse(seen.get("since"))


def run_in_flight(run: DissectionRun, *, now: datetime | None = None) -> bool:
    """True when the run is running and the watchdog saw it progress within the stall bound:
    a worker is on it, so resuming now would run its shards twice. Without observations (no
    beat, e.g. the embedded default, where a running run after a crash is dead) this is False."""
    if run.status != DissectionRun.Status.RUNNING or run.parameters.get("stalled"):
        return False
    since = last_change(run)
    if since is None:
        return False
    return (now or timezone.now()) - since < timedelta(seconds=stall_seconds())


def stalled_runs() -> list[dict]:
    """Running runs the watchdog found stalled (for /healthz and the run list)."""
    out = []
    for run in DissectionRun.objects.filter(status=DissectionRun.Status.RUNNING).only(
        "pk", "stage", "parameters"
    ):
        stalled = (run.parameters or {}).get("stalled")
        if stalled:
            out.append({"run": run.pk, "stage": run.stage, **stalled})
    return out


def _observe(run_id: int, now: datetime) -> tuple[DissectionRun, str] | None:
    """Record the run's fingerprint: (run, 'moving' | 'waiting' | 'stalled'), or None when it
    is not running (any more)."""
    with transaction.atomic():
        run = DissectionRun.objects.select_for_update().filter(pk=run_id).first()
        if run is None or run.status != DissectionRun.Status.RUNNING:
            return None
        params = dict(run.parameters or {})
        current = fingerprint(run)
        seen = params.get("watchdog") or {}
        if seen.get("fingerprint") != current:
            params["watchdog"] = {"fingerprint": current, "since": now.isoformat()}
            params.pop("stalled", None)  # moving again: the stall is over
            DissectionRun.objects.filter(pk=run_id).update(parameters=params)
            run.parameters = params
            return run, "moving"
        since = _parse(seen.get("since")) or now
        stalled = now - since >= timedelta(seconds=stall_seconds())
        return run, "stalled" if stalled else "waiting"


def _recover(run: DissectionRun, now: datetime) -> str:
    """Record the stall on the run and resume it (or fail it after too many recoveries)."""
    from dissect.services import run_fail, run_resume

    params = dict(run.parameters or {})
    since = (params.get("watchdog") or {}).get("since", now.isoformat())
    recoveries = int(params.get("stall_recoveries", 0))
    if recoveries >= stall_recoveries():
        run_fail(
            run_id=run.pk,
            error=(
                f"stalled in stage {run.stage or '?'} since {since}: no progress for "
                f"{stall_seconds()} s after {recoveries} automatic resumes. Check the workers' "
                f"logs (a worker dying on this run each time?), then `python manage.py dissect "
                f"--resume {run.pk}`."
            ),
        )
        logger.error("run %s stalled %s times: failed", run.pk, recoveries)
        return "failed"
    stalled = {"since": since, "detected_at": now.isoformat(), "stage": run.stage,
               "recoveries": recoveries + 1}  # fmt: skip
    params.update(stalled=stalled, stall_recoveries=recoveries + 1)
    # The resumed attempt gets a whole bound of its own before it counts as stalled again.
    params["watchdog"] = {**(params.get("watchdog") or {}), "since": now.isoformat()}
    DissectionRun.objects.filter(pk=run.pk).update(parameters=params)
    run.parameters = params
    logger.warning("run %s stalled in %s since %s: resuming", run.pk, run.stage, since)
    run_resume(run=run, actor=None, force=True)
    return "resumed"


def watchdog_sweep(*, now: datetime | None = None) -> dict[int, str]:
    """One pass over the running runs: {run id: 'moving' | 'waiting' | 'resumed' | 'failed'}."""
    now = now or timezone.now()
    outcome: dict[int, str] = {}
    running = DissectionRun.objects.filter(status=DissectionRun.Status.RUNNING)
    for run_id in running.values_list("pk", flat=True):
        observed = _observe(run_id, now)
        if observed is None:
            continue
        run, state = observed
        if state != "stalled":
            outcome[run_id] = state
            continue
        try:
            outcome[run_id] = _recover(run, now)
        except Exception:  # one broken run never stops the sweep of the others
            logger.exception("watchdog: run %s could not be resumed", run_id)
            outcome[run_id] = "error"
    return outcome
