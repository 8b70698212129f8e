"""A run's status row while its stages work: progress counters, stage, timings, cancellation.

Every stage of the pipeline (``dissect.services``) and the automatic-label stage
(``dissect.autolabel``) report through these functions, so the run page shows one
progress bar per stage whichever module does the work.
"""

import time

from django.conf import settings
from django.db import transaction

from dissect.models import DissectionRun

PROGRESS_EVERY_S = 1.0  # how often a stage writes its counter (and checks for cancellation)


class RunCancelled(Exception):
    """Raised between batches when the run's status row says it was cancelled."""


def show_bars() -> bool:
    # Terminal bars only when tasks run in this process (the embedded default); on a worker
    # they would only clutter the log.
    return bool(settings.CELERY_TASK_ALWAYS_EAGER)


class StageProgress:
    """Reports one stage's progress to the run's status row (throttled), an optional tqdm bar;
    raises RunCancelled when the run was cancelled meanwhile (checked between batches).

    ``additive=True`` adds this worker's count to the stage's shared counter (many shard tasks
    feed one ``extract`` counter); otherwise ``done`` is the stage's absolute count.
    """

    def __init__(self, run_id: int, stage: str, total: int, *, additive: bool = False,
                 label: str = "", bar_total: int | None = None, unit: str = "img"):  # fmt: skip
        self.run_id, self.stage, self.total, self.additive = run_id, stage, total, additive
        self._last = time.monotonic()
        self._reported = 0
        self._bar = None
        if show_bars():
            from tqdm import tqdm

            self._bar = tqdm(total=bar_total or total, desc=label or stage, unit=unit, leave=False)
        if not additive:
            progress_set(run_id, stage, done=0, total=total)

    def __call__(self, done: int, total: int | None = None) -> None:
        if self._bar is not None:
            self._bar.update(done - self._bar.n)
        now = time.monotonic()
        if now - self._last >= PROGRESS_EVERY_S:
            self._last = now
            self._flush(done)
            if run_cancelled(self.run_id):
                raise RunCancelled

    def _flush(self, done: int) -> None:
        if self.additive:
            progress_set(self.run_id, self.stage, add=done - self._reported)
        else:
            progress_set(self.run_id, self.stage, done=done, total=self.total)
        self._reported = done

    def close(self, done: int | None = None) -> None:
        if done is not None:
            self._flush(done)
        if self._bar is not None:
            self._bar.close()


def run_cancelled(run_id: int) -> bool:
    status = DissectionRun.objects.filter(pk=run_id).values_list("status", flat=True).first()
    return status == DissectionRun.Status.CANCELLED


def progress_set(
    run_id: int,
    stage: str,
    *,
    done: int | None = None,
    total: int | None = None,
    add: int = 0,
    counting: str | None = None,
) -> None:
    """Update ``progress[stage]`` under a row lock: shard tasks on many workers write it.
    ``counting`` says what the counter counts when it is not obvious (the merge counts shard
    states read, then layers written: "4 / 4" for 2 shards needs those words)."""
    with transaction.atomic():
        run = DissectionRun.objects.select_for_update().only("progress").get(pk=run_id)
        entry = dict(run.progress.get(stage) or {"done": 0, "total": 0})
        if total is not None:
            entry["total"] = int(total)
        if done is not None:
            entry["done"] = int(done)
        if counting is not None:
            entry["counting"] = counting
        entry["done"] = min(entry["done"] + add, entry["total"] or entry["done"] + add)
        run.progress = {**run.progress, stage: entry}
        DissectionRun.objects.filter(pk=run_id).update(progress=run.progress)


def timing_add(run_id: int, stage: str, seconds: float) -> None:
    with transaction.atomic():
        run = DissectionRun.objects.select_for_update().only("timings").get(pk=run_id)
        timings = {**run.timings, stage: round(float(run.timings.get(stage, 0)) + seconds, 3)}
        DissectionRun.objects.filter(pk=run_id).update(timings=timings)


def stage_set(run_id: int, stage: str) -> None:
    DissectionRun.objects.filter(pk=run_id).exclude(
        status__in=[DissectionRun.Status.CANCELLED, DissectionRun.Status.FAILED]
    ).update(stage=stage, status=DissectionRun.Status.RUNNING)
