"""Campaigns, tasks (Hit), assignments, answers, workers, vocabulary, unit labels, exports, audit."""

from django.conf import settings
from django.db import models
from django.db.models import Q

from dissect.concepts import CATEGORIES
from dissect.models import DissectionRun, Unit


class Worker(models.Model):
    """Somebody who answers tasks: a local account or a worker of an outside crowd."""

    class Source(models.TextChoices):
        LOCAL = "local", "local account"
        MTURK = "mturk", "Mechanical Turk–style panel"
        LINK = "link", "link-out panel (completion code)"
        IMPORTED = "imported", "imported answers"

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="worker",
    )
    source = models.CharField(max_length=10, choices=Source.choices, default=Source.LOCAL)
    external_id = models.CharField(max_length=200, blank=True)
    # Stable, non-identifying id used in exports and dashboards.
    pseudonym = models.CharField(max_length=32, unique=True)
    blocked = models.BooleanField(default=False)
    blocked_reason = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["pseudonym"]
        constraints = [
            models.UniqueConstraint(
                fields=["source", "external_id"],
                condition=~Q(external_id=""),
                name="worker_unique_external_id",
            )
        ]

    def __str__(self) -> str:
        return self.pseudonym


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


class Campaign(models.Model):
    """A labeling campaign over chosen layers of a finished run."""

    class Status(models.TextChoices):
        DRAFT = "draft", "draft"
        LIVE = "live", "live"
        PAUSED = "paused", "paused"
        FINISHED = "finished", "finished"

    name = models.CharField(max_length=200)
    run = models.ForeignKey(DissectionRun, on_delete=models.PROTECT, related_name="campaigns")
    layers = models.JSONField(
        default=list, help_text="Layer names of the run included in the campaign."
    )
    tiles_per_task = models.PositiveIntegerField(default=60)
    controls_per_task = models.PositiveIntegerField(default=3)
    redundancy = models.PositiveIntegerField(default=3, help_text="Workers per unit.")
    lease_minutes = models.PositiveIntegerField(default=20)
    reward_cents = models.PositiveIntegerField(default=0)
    instructions = models.TextField(blank=True)
    gold_rate = models.FloatField(default=0.0, help_text="Share of tasks that are gold units.")
    max_tasks_per_worker = models.PositiveIntegerField(null=True, blank=True)
    min_gold_accuracy = models.FloatField(default=0.5)
    auto_approve_hours = models.PositiveIntegerField(default=72)
    seed = models.BigIntegerField(default=0)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.DRAFT)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(gold_rate__gte=0) & Q(gold_rate__lte=1), name="campaign_gold_rate_0_1"
            ),
            models.CheckConstraint(
                condition=Q(redundancy__gte=1), name="campaign_redundancy_min_1"
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Hit(models.Model):
    """The labeling task of one unit in a campaign, with its recorded tile order."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="hits")
    unit = models.ForeignKey(Unit, on_delete=models.PROTECT, related_name="hits")
    # UnitImage ids in display order, top images and planted controls shuffled together.
    tile_order = models.JSONField(default=list, blank=True)
    is_gold = models.BooleanField(default=False)
    gold_concept = models.CharField(max_length=100, blank=True)
    gold_category = models.CharField(max_length=20, choices=CATEGORIES, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["campaign", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["campaign", "unit"], name="hit_unique_unit_per_campaign"
            )
        ]

    def __str__(self) -> str:
        return f"task {self.pk} (unit {self.unit_id})"


class Assignment(models.Model):
    """One worker's lease on, and answer to, one task."""

    class Status(models.TextChoices):
        LEASED = "leased", "leased"
        SUBMITTED = "submitted", "submitted"
        APPROVED = "approved", "approved"
        REJECTED = "rejected", "rejected"
        RETURNED = "returned", "returned"
        EXPIRED = "expired", "expired"

    hit = models.ForeignKey(Hit, on_delete=models.CASCADE, related_name="assignments")
    worker = models.ForeignKey(Worker, on_delete=models.PROTECT, related_name="assignments")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.LEASED)
    accepted_at = models.DateTimeField(null=True, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    submitted_at = models.DateTimeField(null=True, blank=True)
    active_seconds = models.FloatField(null=True, blank=True)
    reviewed_at = models.DateTimeField(null=True, blank=True)
    reject_reason = models.CharField(max_length=500, blank=True)
    # Times the worker was asked to look again because a planted control tile was left unmarked.
    control_prompts = models.PositiveSmallIntegerField(default=0)
    completion_code = models.CharField(max_length=40, blank=True)
    external_assignment_id = models.CharField(max_length=200, blank=True)
    external_submit_url = models.URLField(max_length=500, blank=True)

    class Meta:
        ordering = ["-accepted_at"]
        constraints = [
            # A worker never gets the same unit twice in a campaign.
            models.UniqueConstraint(
                fields=["hit", "worker"], name="assignment_unique_worker_per_hit"
            )
        ]
        indexes = [
            models.Index(fields=["hit", "status"]),
            models.Index(fields=["worker", "status"]),
        ]

    def __str__(self) -> str:
        return f"assignment {self.pk}"


class Response(models.Model):
    """What a worker answered: concept, category and the tiles that do not fit."""

    assignment = models.OneToOneField(Assignment, on_delete=models.CASCADE, related_name="response")
    concept_text = models.CharField(max_length=200, help_text="As typed.")
    concept = models.ForeignKey(
        Concept, on_delete=models.SET_NULL, null=True, blank=True, related_name="responses"
    )
    category = models.CharField(max_length=20, choices=CATEGORIES)
    flagged_tiles = models.JSONField(
        default=list, blank=True, help_text="UnitImage ids marked 'does not fit'."
    )
    precision = models.FloatField(help_text="Unit tiles not flagged / unit tiles shown.")
    control_failed = models.BooleanField(default=False)
    revisions = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(precision__gte=0) & Q(precision__lte=1), name="response_precision_0_1"
            )
        ]

    def __str__(self) -> str:
        return f"{self.concept_text} ({self.category})"


class UnitLabel(models.Model):
    """The aggregate label of a unit: from the crowd, or automatic (Network Dissection IoU)."""

    class Source(models.TextChoices):
        CROWD = "crowd", "crowd"
        AUTO = "auto", "automatic"

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


class AuditEvent(models.Model):
    """Every state change of the crowd workflow, written in the same transaction as the change."""

    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True
    )
    action = models.CharField(max_length=50, help_text="e.g. assignment.approve, worker.block.")
    target_type = models.CharField(max_length=50)
    target_id = models.CharField(max_length=50)
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["target_type", "target_id"])]

    def __str__(self) -> str:
        return f"{self.action} {self.target_type}:{self.target_id}"
