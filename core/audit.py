"""Audit trail: call audit_record inside the transaction that makes the change it records."""

from typing import Any

from django.db import models

from core.models import AuditAction, AuditEvent


def audit_record(
    *, actor: Any, action: AuditAction, target: models.Model, data: dict | None = None
) -> AuditEvent:
    """Write one AuditEvent for `action` on `target` by `actor` (a user, or None for the system)."""
    if not isinstance(action, AuditAction):
        raise TypeError(f"audit action {action!r}: use a member of core.models.AuditAction")
    return AuditEvent.objects.create(
        actor=actor if getattr(actor, "is_authenticated", False) else None,
        action=action,
        target_type=target._meta.label_lower,
        target_id=str(target.pk),
        data=data or {},
    )
