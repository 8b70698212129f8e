"""Networks, image sets, dissection runs and their per-layer, per-unit results."""

from django.conf import settings
from django.db import models
from django.db.models import Q


class Network(models.Model):
    """A CNN we can load: an architecture plus a checkpoint (or a built-in demo network)."""

    class Source(models.TextChoices):
        BUILTIN = "builtin", "built-in"
        TORCHVISION = "torchvision", "torchvision architecture + checkpoint"
        TORCHSCRIPT = "torchscript", "TorchScript file"
        PICKLE = "pickle", "pickled model (trusted)"
        IMPORTED = "imported", "imported labels only (no weights)"

    name = models.SlugField(max_length=100, unique=True)
    arch = models.CharField(
        max_length=100, help_text="Architecture, e.g. alexnet, resnet18, demo-alexnet."
    )
    source = models.CharField(max_length=20, choices=Source.choices, default=Source.TORCHVISION)
    checkpoint_path = models.CharField(max_length=500, blank=True)
    weights_sha256 = models.CharField(max_length=64, blank=True)
    class_names = models.JSONField(default=list, blank=True)
    # {input_size, resize, crop, mean, std}: how images become tensors for this network.
    preprocessing = models.JSONField(default=dict, blank=True)
    layer_aliases = models.JSONField(default=dict, blank=True, help_text="alias → module path")
    trust_pickle = models.BooleanField(default=False)
    training_data = models.CharField(
        max_length=200, blank=True, help_text="e.g. Places205, ImageNet"
    )
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def is_untrained(self) -> bool:
        """Registered with --random-init: an architecture without a checkpoint, whose weights
        are random (no fingerprint). Pages mark it "untrained (random weights)"."""
        return (
            self.source == self.Source.TORCHVISION
            and not self.checkpoint_path
            and not self.weights_sha256
        )


class ImageSet(models.Model):
    """A folder (or CSV manifest) of images, scanned once into Image rows."""

    name = models.SlugField(max_length=100, unique=True)
    root = models.CharField(max_length=500, help_text="Folder the image paths are relative to.")
    manifest_sha256 = models.CharField(
        max_length=64,
        blank=True,
        help_text="Hash of the sorted (path, sha1) list: identifies the set.",
    )
    # Broden-like pixel labels (index CSV + label table) make automatic labels possible.
    labels_dir = models.CharField(max_length=500, blank=True)
    image_count = models.PositiveIntegerField(default=0)
    bad_count = models.PositiveIntegerField(default=0)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Image(models.Model):
    class Status(models.TextChoices):
        OK = "ok", "ok"
        BAD = "bad", "bad"

    image_set = models.ForeignKey(ImageSet, on_delete=models.CASCADE, related_name="images")
    path = models.CharField(max_length=500, help_text="Relative to the image set's root.")
    sha1 = models.CharField(max_length=40, blank=True)
    size_bytes = models.PositiveBigIntegerField(default=0)
    width = models.PositiveIntegerField(default=0)
    height = models.PositiveIntegerField(default=0)
    status = models.CharField(max_length=3, choices=Status.choices, default=Status.OK)
    reason = models.CharField(max_length=300, blank=True, help_text="Why a bad file was skipped.")
    scene_label = models.CharField(max_length=100, blank=True)
    split = models.CharField(max_length=20, blank=True)

    class Meta:
        ordering = ["image_set", "id"]
        constraints = [
            models.UniqueConstraint(fields=["image_set", "path"], name="image_unique_path_per_set"),
            models.CheckConstraint(
                condition=Q(status="ok") | ~Q(reason=""), name="image_bad_has_reason"
            ),
        ]
        indexes = [models.Index(fields=["image_set", "status"])]

    def __str__(self) -> str:
        return self.path


class DissectionRun(models.Model):
    """One dissection of a network's layers over an image set, with its parameters and progress."""

    class Status(models.TextChoices):
        PENDING = "pending", "pending"
        RUNNING = "running", "running"
        DONE = "done", "done"
        FAILED = "failed", "failed"
        CANCELLED = "cancelled", "cancelled"
        IMPORTED = "imported", "imported (labels only)"

    network = models.ForeignKey(Network, on_delete=models.PROTECT, related_name="runs")
    image_set = models.ForeignKey(
        ImageSet, on_delete=models.PROTECT, related_name="runs", null=True, blank=True
    )
    layers = models.JSONField(default=list, help_text="Layer aliases or module paths, in order.")
    # top_k, controls, shard_size, segmentation recipe and threshold, tile_px, receptive field, device...
    parameters = models.JSONField(default=dict, blank=True)
    seed = models.BigIntegerField(default=0)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    stage = models.CharField(max_length=30, blank=True, help_text="Current stage, e.g. extract.")
    # {stage: {"done": n, "total": m}}: what the run page shows as progress bars.
    progress = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    timings = models.JSONField(default=dict, blank=True, help_text="Seconds per stage.")
    code_version = models.CharField(max_length=64, blank=True)
    device = models.CharField(max_length=20, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"run {self.pk} of {self.network_id}"


class Shard(models.Model):
    """A slice of a run's images; its partial state is a small file, so a run resumes shard by shard."""

    class Status(models.TextChoices):
        PENDING = "pending", "pending"
        DONE = "done", "done"
        FAILED = "failed", "failed"

    run = models.ForeignKey(DissectionRun, on_delete=models.CASCADE, related_name="shards")
    index = models.PositiveIntegerField()
    image_count = models.PositiveIntegerField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    state_path = models.CharField(max_length=500, blank=True)
    worker = models.CharField(max_length=200, blank=True)
    seconds = models.FloatField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["run", "index"]
        constraints = [models.UniqueConstraint(fields=["run", "index"], name="shard_unique_index")]

    def __str__(self) -> str:
        return f"shard {self.index} of run {self.run_id}"


class Layer(models.Model):
    run = models.ForeignKey(DissectionRun, on_delete=models.CASCADE, related_name="layer_set")
    name = models.CharField(max_length=100, help_text="Alias shown to people, e.g. pool5.")
    module_path = models.CharField(max_length=200, blank=True)
    order = models.PositiveIntegerField(default=0)
    unit_count = models.PositiveIntegerField(default=0)
    output_shape = models.JSONField(default=list, blank=True)
    theoretical_rf_px = models.FloatField(null=True, blank=True)
    empirical_rf_mean_px = models.FloatField(null=True, blank=True)
    empirical_rf_std_px = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["run", "order"]
        constraints = [models.UniqueConstraint(fields=["run", "name"], name="layer_unique_name")]

    def __str__(self) -> str:
        return self.name


class Unit(models.Model):
    layer = models.ForeignKey(Layer, on_delete=models.CASCADE, related_name="units")
    index = models.PositiveIntegerField()
    # Activation quantile threshold (top 0.5% by default) used by masks and explain().
    threshold = models.FloatField(null=True, blank=True)
    top_score = models.FloatField(null=True, blank=True)
    rf_size_px = models.FloatField(null=True, blank=True)
    rf_map_path = models.CharField(max_length=500, blank=True)
    montage_path = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["layer", "index"]
        constraints = [models.UniqueConstraint(fields=["layer", "index"], name="unit_unique_index")]

    def __str__(self) -> str:
        return f"{self.layer.name}#{self.index}"


class UnitImage(models.Model):
    """One of a unit's top images (or a low-scoring control image), with its rendered tile."""

    class Kind(models.TextChoices):
        TOP = "top", "top-activating"
        CONTROL = "control", "lowest-scoring (negative control)"

    unit = models.ForeignKey(Unit, on_delete=models.CASCADE, related_name="unit_images")
    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="unit_images")
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.TOP)
    rank = models.PositiveIntegerField(help_text="0 = highest score for top, lowest for control.")
    score = models.FloatField()
    argmax_y = models.PositiveIntegerField(default=0)
    argmax_x = models.PositiveIntegerField(default=0)
    tile_path = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["unit", "kind", "rank"]
        constraints = [
            models.UniqueConstraint(fields=["unit", "kind", "rank"], name="unitimage_unique_rank"),
            models.UniqueConstraint(
                fields=["unit", "kind", "image"], name="unitimage_unique_image"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} #{self.rank} of unit {self.unit_id}"


class AutoLabel(models.Model):
    """Network Dissection's automatic label of a unit: best-IoU label overall or per category."""

    unit = models.ForeignKey(Unit, on_delete=models.CASCADE, related_name="auto_labels")
    category = models.CharField(
        max_length=30, blank=True, help_text="Empty = best over all categories."
    )
    label = models.CharField(max_length=100)
    iou = models.FloatField()

    class Meta:
        ordering = ["unit", "category"]
        constraints = [
            models.UniqueConstraint(fields=["unit", "category"], name="autolabel_unique_category")
        ]

    def __str__(self) -> str:
        return f"{self.label} (IoU {self.iou:.2f})"
