"""What every app shares: the concept vocabulary rows and the audit trail."""

from django.conf import settings
from django.db import models

from core.concepts.categories import CATEGORIES


class Concept(models.Model):
    """A normalized concept name in the vocabulary; merged concepts point at the one they became."""

    class Source(models.TextChoices):
        VOCABULARY = "vocabulary", "shipped vocabulary"
        FREE = "free", "free text from answers"

    name = models.CharField(max_length=100, unique=True)
    category = models.CharField(max_length=20, choices=CATEGORIES, blank=True)
    synonyms = models.JSONField(default=list, blank=True)
    source = models.CharField(max_length=20, choices=Source.choices, default=Source.FREE)
    merged_into = models.ForeignKey(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="merged_from"
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class AuditAction(models.TextChoices):
    """Every kind of audited change, one member each (rows store the value)."""

    WORKER_BLOCK = "worker.block"
    WORKER_UNBLOCK = "worker.unblock"
    CAMPAIGN_CREATE = "campaign.create"
    CAMPAIGN_STATUS = "campaign.status"
    ASSIGNMENT_LEASE = "assignment.lease"
    ASSIGNMENT_LINK_EXTERNAL = "assignment.link_external"
    ASSIGNMENT_RETURN = "assignment.return"
    ASSIGNMENT_SKIP = "assignment.skip"
    ASSIGNMENT_EXPIRE = "assignment.expire"
    ASSIGNMENT_CONTROL_PROMPT = "assignment.control_prompt"
    ASSIGNMENT_SUBMIT = "assignment.submit"
    ASSIGNMENT_APPROVE = "assignment.approve"
    ASSIGNMENT_REJECT = "assignment.reject"
    ASSIGNMENT_AUTO_APPROVE = "assignment.auto_approve"
    EXPORT_CREATE = "export.create"
    EXPORT_DONE = "export.done"
    EXPORT_DOWNLOAD = "export.download"
    ICLR15_IMPORT = "iclr15.import"
    CONCEPT_MERGE = "concept.merge"
    CONCEPT_UNMERGE = "concept.unmerge"
    NETWORK_REGISTER = "network.register"
    IMAGE_SET_SCAN = "image_set.scan"
    RUN_CREATE = "run.create"
    RUN_CANCEL = "run.cancel"
    RUN_RESUME = "run.resume"


class AuditEvent(models.Model):
    """Every state change of every app, written in the same transaction as the change."""

    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True
    )
    action = models.CharField(max_length=50, choices=AuditAction.choices)
    target_type = models.CharField(max_length=50)
    target_id = models.CharField(max_length=50)
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["target_type", "target_id"])]

    def __str__(self) -> str:
        return f"{self.action} {self.target_type}:{self.target_id}"
