"""Aggregated unit labels and export jobs."""

from django.conf import settings
from django.db import models

from core.concepts.categories import CATEGORIES
from core.models import Concept
from dissect.models import Unit


class UnitLabel(models.Model):
    """The aggregate crowd label of a unit (automatic labels are dissect's AutoLabel rows)."""

    class Source(models.TextChoices):
        CROWD = "crowd", "crowd"

    unit = models.ForeignKey(Unit, on_delete=models.CASCADE, related_name="labels")
    source = models.CharField(max_length=10, choices=Source.choices, default=Source.CROWD)
    concept_text = models.CharField(max_length=100, blank=True)
    concept = models.ForeignKey(Concept, on_delete=models.SET_NULL, null=True, blank=True)
    category = models.CharField(max_length=20, choices=CATEGORIES, blank=True)
    precision = models.FloatField(null=True, blank=True)
    tile_precision = models.FloatField(null=True, blank=True)
    agreement = models.FloatField(null=True, blank=True)
    is_detector = models.BooleanField(default=False)
    answer_count = models.PositiveIntegerField(default=0)
    method = models.CharField(
        max_length=30, blank=True, help_text="e.g. plurality, dawid-skene, iou."
    )
    details = models.JSONField(default=dict, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["unit"]
        constraints = [
            models.UniqueConstraint(fields=["unit", "source"], name="unitlabel_unique_source")
        ]
        indexes = [models.Index(fields=["concept_text"]), models.Index(fields=["is_detector"])]

    def __str__(self) -> str:
        return f"{self.source}: {self.concept_text or '?'}"


class Export(models.Model):
    """An export job of labeled units, with its status row and the file's checksum."""

    class Kind(models.TextChoices):
        JSONL = "jsonl", "JSON lines"
        CSV = "csv", "CSV"
        ZIP = "zip", "zip with tiles, labels and data card"
        TALLY = "tally", "NetDissect-style tally CSV"
        MILAN = "milan", "MILAN-style descriptions"

    class Status(models.TextChoices):
        PENDING = "pending", "pending"
        RUNNING = "running", "running"
        DONE = "done", "done"
        FAILED = "failed", "failed"

    kind = models.CharField(max_length=10, choices=Kind.choices)
    parameters = models.JSONField(default=dict, blank=True, help_text="Which network/run/campaign.")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    progress = models.JSONField(default=dict, blank=True)
    file_path = models.CharField(max_length=500, blank=True)
    sha256 = models.CharField(max_length=64, blank=True)
    size_bytes = models.PositiveBigIntegerField(default=0)
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True
    )
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.kind} export {self.pk}"
