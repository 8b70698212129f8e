"""Reads of the dissection pipeline: runs, their progress, layers, units and their images.

Nothing here imports torch: the web process calls these for ordinary requests.
"""

from __future__ import annotations

from django.core.paginator import Page, Paginator
from django.db.models import Count, Prefetch, Q, QuerySet

from dissect.models import DissectionRun, Image, ImageSet, Layer, Network, Shard, Unit, UnitImage
from dissect.storage import media_url

STAGES: tuple[str, ...] = ("extract", "merge", "render")


def network_list() -> QuerySet[Network]:
    return Network.objects.all()


def image_set_list() -> QuerySet[ImageSet]:
    return ImageSet.objects.all()


def run_list() -> QuerySet[DissectionRun]:
    """Runs, newest first, with their network and image set."""
    return (
        DissectionRun.objects.select_related("network", "image_set")
        .annotate(layer_count=Count("layer_set"))
        .order_by("-created_at", "-id")
    )


def run_ordered_images(*, run: DissectionRun) -> QuerySet[Image]:
    """The run's images in the fixed order shards slice (usable images by id)."""
    return Image.objects.filter(image_set_id=run.image_set_id, status=Image.Status.OK).order_by(
        "id"
    )


def run_bad_images(*, run: DissectionRun) -> QuerySet[Image]:
    """Files of the run's image set that were skipped, with the reason."""
    if run.image_set_id is None:
        return Image.objects.none()
    return Image.objects.filter(image_set_id=run.image_set_id, status=Image.Status.BAD).order_by(
        "path"
    )


def run_status(*, run: DissectionRun) -> dict:
    """What the run page polls: status, stage, per-stage progress (with fractions), timings,
    error text and shard counts. JSON-friendly."""
    shards = run.shards.aggregate(
        total=Count("id"), done=Count("id", filter=Q(status=Shard.Status.DONE))
    )
    stages = []
    for name in _stage_order(run):
        entry = run.progress.get(name) or {}
        done, total = int(entry.get("done", 0)), int(entry.get("total", 0))
        stages.append(
            {
                "stage": name,
                "done": done,
                "total": total,
                "fraction": (done / total) if total else 0.0,
                "seconds": run.timings.get(name),
            }
        )
    return {
        "id": run.pk,
        "status": run.status,
        "stage": run.stage,
        "finished": run.status
        in (DissectionRun.Status.DONE, DissectionRun.Status.FAILED, DissectionRun.Status.CANCELLED),
        "stages": stages,
        "error": run.error,
        "shards": {"done": shards["done"] or 0, "total": shards["total"] or 0},
        "device": run.device,
        "code_version": run.code_version,
    }


def _stage_order(run: DissectionRun) -> list[str]:
    """extract, merge, the receptive-field stages (one per layer, when asked for), render."""
    rf = [s for s in run.progress if s.startswith("receptive_field")]
    if run.parameters.get("receptive_field") and not rf:
        rf = [f"receptive_field {name}" for name in run.layers]
    auto = (
        ["auto_label"] if run.parameters.get("auto_labels") or "auto_label" in run.progress else []
    )
    return ["extract", "merge", *rf, *auto, "render"]


def run_layers(*, run: DissectionRun) -> QuerySet[Layer]:
    return run.layer_set.all().order_by("order")


def layer_get(*, run: DissectionRun, name: str) -> Layer:
    return Layer.objects.select_related("run", "run__network").get(run=run, name=name)


def layer_units_page(*, layer: Layer, page: int | str | None, per_page: int = 48) -> Page:
    """One page of a layer's units (by index), each with ``montage_url`` set."""
    paginator = Paginator(layer.units.all().order_by("index"), per_page)
    result = paginator.get_page(page)
    for unit in result.object_list:
        unit.montage_url = media_url(unit.montage_path)
    return result


def unit_get(*, layer: Layer, index: int) -> Unit:
    """A unit with its images (top then controls, by rank) prefetched and tile URLs set."""
    images = UnitImage.objects.select_related("image").order_by("kind", "rank")
    unit = (
        Unit.objects.select_related("layer", "layer__run", "layer__run__network")
        .prefetch_related(Prefetch("unit_images", queryset=images), "auto_labels")
        .get(layer=layer, index=index)
    )
    for unit_image in unit.unit_images.all():
        unit_image.tile_url = media_url(unit_image.tile_path)
    unit.montage_url = media_url(unit.montage_path)
    unit.rf_map_url = media_url(unit.rf_map_path)
    return unit


def unit_images(*, unit: Unit, kind: str) -> list[UnitImage]:
    """The unit's images of one kind ('top' or 'control'), by rank (uses the prefetch)."""
    return [ui for ui in unit.unit_images.all() if ui.kind == kind]


def unit_labels(*, unit: Unit) -> list:
    """The unit's aggregate labels (crowd or automatic) through the reverse relation the
    annotate app defines; dissect never imports annotate, so an absent app gives []."""
    manager = getattr(unit, "labels", None)
    if manager is None:
        return []
    return list(manager.all())


def unit_neighbors(*, unit: Unit) -> tuple[int | None, int | None]:
    """Indices of the previous and next unit of the same layer (None at the ends)."""
    index = unit.index
    count = unit.layer.unit_count or unit.layer.units.count()
    return (index - 1 if index > 0 else None, index + 1 if index + 1 < count else None)
