"""Celery tasks (queue cpu): thin, idempotent sweeps over the crowd services.

Leases already stop counting the moment they end (the assignment engine checks lease_expires_at), so
`expire_leases` only tidies statuses; run both tasks every few minutes from Celery beat.
"""

from celery import shared_task

from annotate.crowd import services


@shared_task(name="annotate.crowd.tasks.expire_leases")
def expire_leases() -> int:
    """Mark ended leases expired; returns how many."""
    return services.leases_expire()


@shared_task(name="annotate.crowd.tasks.auto_approve")
def auto_approve() -> int:
    """Approve answers left unreviewed past their campaign's delay; returns how many."""
    return services.auto_approve_due()
