"""Celery task of the automatic-label stage (queue gpu, by config/celery.py's routes).

Thin: takes a run id, calls ``dissect.explain.autolabel.run_auto_labels``. Idempotent (it
replaces the layers' AutoLabel rows). Inside a running run's chain a failure fails the run with
its message, like the pipeline's other stages; on a finished run it only fails this task.
"""

from __future__ import annotations

from celery import shared_task
from django.db import InterfaceError, OperationalError


@shared_task(
    name="dissect.explain.tasks.auto_label_run",
    bind=True,
    autoretry_for=(OperationalError, InterfaceError, ConnectionError),
    retry_backoff=5,
    retry_backoff_max=300,
    retry_jitter=True,
    max_retries=5,
)
def auto_label_run(self, run_id: int, layers: list[str] | None = None) -> int | None:
    """Best-IoU labels per unit from the image set's pixel labels (queue gpu)."""
    from dissect.explain.autolabel import run_auto_labels
    from dissect.models import DissectionRun
    from dissect.tasks import _guarded

    work = lambda: run_auto_labels(run_id=run_id, layers=layers)  # noqa: E731
    status = DissectionRun.objects.filter(pk=run_id).values_list("status", flat=True).first()
    if status == DissectionRun.Status.RUNNING:
        return _guarded(run_id, work)
    return work()
