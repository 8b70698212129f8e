"""The crowd workflow: workers, campaigns, tasks (one per unit), assignments (leases) and answers."""

from django.conf import settings
from django.db import models
from django.db.models import F, Q

from core.concepts.categories import CATEGORIES
from core.models import Concept
from dissect.models import DissectionRun, Unit


class Worker(models.Model):
    """Somebody who answers tasks: a local account or a worker of an outside crowd."""

    class Source(models.TextChoices):
        LOCAL = "local", "local account"
        MTURK = "mturk", "Mechanical Turk–style panel"
        LINK = "link", "link-out panel (completion code)"
        IMPORTED = "imported", "imported answers"
        # Simulated workers (annotate.demo's simulated crowd): never people; every page and
        # export that shows their answers says so.
        SIMULATED = "simulated", "simulated worker (demo)"

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

    @property
    def is_simulated(self) -> bool:
        return self.source == self.Source.SIMULATED


class Campaign(models.Model):
    """A labeling campaign over chosen layers of a finished run."""

    class Status(models.TextChoices):
        DRAFT = "draft", "draft"
        LIVE = "live", "live"
        PAUSED = "paused", "paused"
        FINISHED = "finished", "finished"

    class FillOrder(models.TextChoices):
        # Finish units to their redundancy before opening new ones: labels (and detectors) appear
        # early, after redundancy answers per unit, instead of only once every unit has one.
        COMPLETE = "complete", "complete units first"
        # The fewest-answered unit first: every unit gets a first answer before any gets a second.
        SPREAD = "spread", "spread answers over all units"

    class VerificationState(models.TextChoices):
        NONE = "", "no verification sample"
        PENDING = "pending", "waiting for a gpu worker"
        BUILDING = "building", "building"
        READY = "ready", "ready"
        FAILED = "failed", "failed"

    name = models.CharField(max_length=200)
    run = models.ForeignKey(DissectionRun, on_delete=models.PROTECT, related_name="campaigns")
    layers = models.JSONField(
        default=list, help_text="Layer names of the run included in the campaign."
    )
    tiles_per_task = models.PositiveIntegerField(default=60)
    controls_per_task = models.PositiveIntegerField(default=3)
    redundancy = models.PositiveIntegerField(
        default=3,
        help_text="Answers per unit; with adaptive redundancy (max_answers above it) the minimum.",
    )
    # Adaptive redundancy (annotate/crowd/redundancy.py): a unit whose label reaches
    # target_confidence after `redundancy` answers gets no more; one where workers disagree gets
    # more, up to max_answers. Empty max_answers: fixed redundancy.
    max_answers = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Most answers per unit (adaptive redundancy); empty: exactly `redundancy`.",
    )
    target_confidence = models.FloatField(
        default=0.9, help_text="Posterior of a unit's label at which it stops receiving workers."
    )
    # Link-out studies (Prolific): after the session's last answer the worker is sent to
    # completion_url, or shown completion_code (the study's code) when there is no URL.
    completion_url = models.URLField(max_length=500, blank=True)
    completion_code = models.CharField(max_length=40, blank=True)
    tasks_per_session = models.PositiveIntegerField(
        default=1, help_text="Tasks a link-out worker answers in one session before completing."
    )
    fill_order = models.CharField(
        max_length=10,
        choices=FillOrder.choices,
        default=FillOrder.COMPLETE,
        help_text="complete: finish units to their redundancy before opening new ones; "
        "spread: the fewest-answered unit first.",
    )
    lease_minutes = models.PositiveIntegerField(default=20)
    reward_cents = models.PositiveIntegerField(default=0)
    instructions = models.TextField(blank=True)
    gold_rate = models.FloatField(default=0.0, help_text="Share of tasks that are gold units.")
    max_tasks_per_worker = models.PositiveIntegerField(null=True, blank=True)
    min_gold_accuracy = models.FloatField(default=0.5)
    auto_approve_hours = models.PositiveIntegerField(default=72)
    seed = models.BigIntegerField(default=0)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.DRAFT)
    # The build of the campaign's verification sample (annotate.crowd.tasks.build_verification,
    # queue gpu): empty when none was asked for (or the tasks were made directly); verification
    # leases are handed out only when it is empty or ready.
    verification_state = models.CharField(
        max_length=10, choices=VerificationState.choices, blank=True, default=""
    )
    verification_error = models.TextField(blank=True)
    # Steps of the build (images scored per layer, then one per unit), as the task goes.
    verification_done = models.PositiveIntegerField(default=0)
    verification_total = models.PositiveIntegerField(default=0)
    # When the running build began (set as it is marked building): a build still "building" past
    # the task's hard time limit (config/celery.py) has lost its worker and may be built again
    # (annotate.crowd.verification.verification_build_status).
    verification_started_at = models.DateTimeField(null=True, blank=True)
    # What the build was asked for (verify_source, verify_images, verify_checks): a rebuild
    # uses the same.
    verification_options = models.JSONField(default=dict, blank=True)
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
            models.CheckConstraint(
                condition=Q(max_answers__isnull=True) | Q(max_answers__gte=F("redundancy")),
                name="campaign_max_answers_gte_redundancy",
            ),
            models.CheckConstraint(
                condition=Q(target_confidence__gt=0) & Q(target_confidence__lt=1),
                name="campaign_target_confidence_0_1",
            ),
            models.CheckConstraint(
                condition=Q(tasks_per_session__gte=1), name="campaign_tasks_per_session_min_1"
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def answers_max(self) -> int:
        """The most answers one unit may get: max_answers, or the fixed redundancy."""
        return max(self.redundancy, self.max_answers or self.redundancy)

    @property
    def is_adaptive(self) -> bool:
        return self.answers_max > self.redundancy


class Task(models.Model):
    """The labeling task of one unit in a campaign, with its recorded tile order."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="tasks")
    unit = models.ForeignKey(Unit, on_delete=models.PROTECT, related_name="tasks")
    # UnitImage ids in display order, top images and planted controls shuffled together.
    tile_order = models.JSONField(default=list, blank=True)
    is_gold = models.BooleanField(default=False)
    gold_concept = models.CharField(max_length=100, blank=True)
    gold_category = models.CharField(max_length=20, choices=CATEGORIES, blank=True)
    # Slots (answers plus live leases) the task may hold now: the campaign's redundancy at first,
    # then set by redundancy.answers_wanted after every counted change of its answers; never
    # above the campaign's answers_max. Leases are handed out only below it (under the row lock).
    answers_wanted = models.PositiveSmallIntegerField(default=3)
    # Posterior of the leading label after the last change (redundancy.label_posterior).
    confidence = models.FloatField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["campaign", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["campaign", "unit"], name="task_unique_unit_per_campaign"
            ),
            models.CheckConstraint(
                condition=Q(answers_wanted__gte=1), name="task_answers_wanted_min_1"
            ),
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

    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="assignments")
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
    # The link-out study session (Prolific) this assignment was answered in.
    session = models.ForeignKey(
        "StudySession",
        on_delete=models.RESTRICT,  # goes only with its campaign
        null=True,
        blank=True,
        related_name="assignments",
    )

    class Meta:
        ordering = ["-accepted_at"]
        constraints = [
            # A worker never gets the same unit twice in a campaign.
            models.UniqueConstraint(
                fields=["task", "worker"], name="assignment_unique_worker_per_task"
            )
        ]
        indexes = [
            models.Index(fields=["task", "status"], name="crowd_assig_task_id_idx"),
            models.Index(fields=["worker", "status"], name="crowd_assig_worker_status_idx"),
        ]

    def __str__(self) -> str:
        return f"assignment {self.pk}"


class StudySession(models.Model):
    """One visit of a link-out panel's participant (Prolific: PROLIFIC_PID, STUDY_ID, SESSION_ID).

    The session id is Prolific's submission id; approve/reject decisions are exported keyed by it.
    `completed_at` is set when the completion code or redirect was given (after the answers)."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="sessions")
    worker = models.ForeignKey(Worker, on_delete=models.PROTECT, related_name="sessions")
    study_id = models.CharField(max_length=200, blank=True)
    session_id = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # A session id names one participant's visit: never shared by two workers.
            models.UniqueConstraint(
                fields=["campaign", "session_id"], name="session_unique_id_per_campaign"
            )
        ]

    def __str__(self) -> str:
        return f"session {self.session_id}"


class Answer(models.Model):
    """What a worker answered: concept, category and the tiles that do not fit."""

    assignment = models.OneToOneField(Assignment, on_delete=models.CASCADE, related_name="answer")
    concept_text = models.CharField(max_length=200, help_text="As typed.")
    concept = models.ForeignKey(
        Concept, on_delete=models.SET_NULL, null=True, blank=True, related_name="answers"
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
                condition=Q(precision__gte=0) & Q(precision__lte=1), name="answer_precision_0_1"
            )
        ]

    def __str__(self) -> str:
        return f"{self.concept_text} ({self.category})"


# --- verification tasks (issue 16): is a unit's label right over its whole activation range? ---


class VerificationTask(models.Model):
    """Verification of one unit's label in a campaign: images sampled over the unit's whole
    activation range with known inclusion probabilities (``dissect.verification_sampling``),
    each asked "does the highlighted region show CONCEPT?"."""

    class LabelSource(models.TextChoices):
        CROWD = "crowd", "crowd label"
        AUTO = "auto", "automatic label (Network Dissection)"

    campaign = models.ForeignKey(
        Campaign, on_delete=models.CASCADE, related_name="verification_tasks"
    )
    unit = models.ForeignKey(Unit, on_delete=models.PROTECT, related_name="verification_tasks")
    concept = models.CharField(max_length=100)
    label_source = models.CharField(max_length=10, choices=LabelSource.choices)
    population = models.PositiveIntegerField(help_text="Images of the run the sample is from.")
    threshold = models.FloatField(help_text="The unit's activation threshold the masks used.")
    strata = models.JSONField(default=list, blank=True)
    seed = models.BigIntegerField(default=0)
    answers_wanted = models.PositiveSmallIntegerField(default=3)
    confidence = models.FloatField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["campaign", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["campaign", "unit", "label_source"],
                name="verificationtask_unique_unit_source",
            ),
            models.CheckConstraint(
                condition=Q(answers_wanted__gte=1), name="verificationtask_wanted_min_1"
            ),
        ]

    def __str__(self) -> str:
        return f"verification {self.pk} (unit {self.unit_id}: {self.concept})"


class VerificationItem(models.Model):
    """One image of a verification task, at its (seeded, shuffled) position. Workers see only the
    position and the tile: never the activation, the weight, the stratum or that it is a check."""

    class Planted(models.TextChoices):
        NONE = "", "sampled"
        FITS = "fits", "planted check: the label certainly fits"
        NOT = "not", "planted check: the label certainly does not fit"

    task = models.ForeignKey(VerificationTask, on_delete=models.CASCADE, related_name="items")
    position = models.PositiveIntegerField()
    image = models.ForeignKey(
        "dissect.Image", on_delete=models.PROTECT, related_name="verification_items"
    )
    activation = models.FloatField()
    inclusion_probability = models.FloatField(help_text="0 for planted checks (never counted).")
    stratum = models.SmallIntegerField()
    silent = models.BooleanField(default=False, help_text="Below threshold: whole image shown.")
    tile_path = models.CharField(max_length=500)
    planted = models.CharField(max_length=4, choices=Planted.choices, blank=True, default="")
    coverage = models.FloatField(
        null=True, blank=True, help_text="The concept's share of the region from label maps."
    )

    class Meta:
        ordering = ["task", "position"]
        constraints = [
            models.UniqueConstraint(
                fields=["task", "position"], name="verificationitem_unique_position"
            ),
            models.UniqueConstraint(fields=["task", "image"], name="verificationitem_unique_image"),
            models.CheckConstraint(
                condition=Q(inclusion_probability__gte=0) & Q(inclusion_probability__lte=1),
                name="verificationitem_probability_0_1",
            ),
        ]

    def __str__(self) -> str:
        return f"item {self.position} of verification {self.task_id}"


class VerificationAssignment(models.Model):
    """One worker's pass over one verification task (answers come image by image)."""

    class Status(models.TextChoices):
        LEASED = "leased", "leased"
        SUBMITTED = "submitted", "submitted"
        RETURNED = "returned", "returned"

    task = models.ForeignKey(VerificationTask, on_delete=models.CASCADE, related_name="assignments")
    worker = models.ForeignKey(
        Worker, on_delete=models.PROTECT, related_name="verification_assignments"
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.LEASED)
    accepted_at = models.DateTimeField(auto_now_add=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    submitted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-accepted_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["task", "worker"], name="verificationassignment_unique_worker"
            )
        ]

    def __str__(self) -> str:
        return f"verification assignment {self.pk}"


class VerificationAnswer(models.Model):
    """A worker's answer about one image: yes / no / can't tell."""

    class Choice(models.TextChoices):
        YES = "yes", "yes"
        NO = "no", "no"
        CANT = "cant", "can't tell"

    assignment = models.ForeignKey(
        VerificationAssignment, on_delete=models.CASCADE, related_name="answers"
    )
    item = models.ForeignKey(VerificationItem, on_delete=models.CASCADE, related_name="answers")
    answer = models.CharField(max_length=4, choices=Choice.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["assignment", "item"]
        constraints = [
            models.UniqueConstraint(
                fields=["assignment", "item"], name="verificationanswer_once_per_image"
            )
        ]

    def __str__(self) -> str:
        return f"{self.answer} on item {self.item_id}"
