"""Celery tasks: thin, idempotent sweeps over the crowd services (queue cpu) and the build of a
campaign's verification sample (``build_verification``, queue gpu: config/celery.py routes it).

Leases already stop counting the moment they end (the assignment engine checks lease_expires_at), so
`expire_leases` only tidies statuses; run both tasks every few minutes from Celery beat.
"""

from celery import shared_task
from django.db import InterfaceError, OperationalError

from annotate.crowd import services


@shared_task(name="annotate.crowd.tasks.expire_leases")
def expire_leases() -> int:
    """Mark ended leases expired; returns how many."""
    return services.leases_expire()


@shared_task(name="annotate.crowd.tasks.auto_approve")
def auto_approve() -> int:
    """Approve answers left unreviewed past their campaign's delay; returns how many."""
    return services.auto_approve_due()


# Transient database or broker errors are retried with backoff (as dissect.tasks does); any other
# error is stored on the campaign by verification_build.
_RETRY = {
    "bind": True,
    "autoretry_for": (OperationalError, InterfaceError, ConnectionError),
    "retry_backoff": 5,
    "retry_backoff_max": 300,
    "retry_jitter": True,
    "max_retries": 5,
}


@shared_task(name="annotate.crowd.tasks.build_verification", **_RETRY)
def build_verification(self, campaign_id: int, actor_id: int | None = None) -> str:
    """Build a campaign's verification tasks (queue gpu: one scoring pass per layer, then the
    tiles); records progress and ready / failed on the campaign. Idempotent."""
    from annotate.crowd.verification import verification_build, verification_build_failed

    try:
        return verification_build(campaign_id=campaign_id, actor_id=actor_id)
    except (OperationalError, InterfaceError, ConnectionError) as error:
        if self.request.retries >= self.max_retries:  # the last try: say so on the campaign
            verification_build_failed(
                campaign_id=campaign_id,
                error=f"{type(error).__name__}: {error} (after {self.max_retries} retries); "
                "build the sample again once the database and broker answer",
            )
        raise
