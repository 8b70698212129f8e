"""Platform-level Celery tasks."""

from celery import shared_task


@shared_task
def roundtrip_write(token: str) -> str:
    """Write an audit row from a worker: proves broker, worker and database work together."""
    from core.models import AuditEvent

    event = AuditEvent.objects.create(
        action="health.roundtrip", target_type="config", target_id=token, data={"via": "celery"}
    )
    return str(event.pk)
