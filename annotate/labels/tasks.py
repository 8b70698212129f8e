"""Celery tasks of the labels part: thin, take ids, idempotent. They run on queue `cpu`
(config/celery.py routes everything outside dissect.tasks there)."""

from celery import shared_task


@shared_task(
    name="annotate.labels.tasks.recompute_unit_label",
    autoretry_for=(ConnectionError,),
    retry_backoff=True,
    max_retries=5,
)
def recompute_unit_label(unit_id: int) -> bool:
    """Recompute one unit's crowd label (called after every submission); True if it has one."""
    from annotate.labels.aggregation import unit_label_recompute

    return unit_label_recompute(unit_id=unit_id) is not None


@shared_task(name="annotate.labels.tasks.recompute_run_labels")
def recompute_run_labels(run_id: int) -> int:
    """Recompute the crowd labels of every unit of a run (on demand); returns how many exist."""
    from annotate.labels.aggregation import run_labels_recompute

    return run_labels_recompute(run_id=run_id)


@shared_task(name="annotate.labels.tasks.run_export", acks_late=True)
def run_export(export_id: int) -> str:
    """Write the file of one Export row (status, progress, checksum kept on the row)."""
    from annotate.labels.exports import export_run

    return export_run(export_id=export_id).status
