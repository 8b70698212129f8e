"""Reads of the dissection pipeline: runs, their progress, layers, units and their images.

Nothing here imports torch: the web process calls these for ordinary requests.
"""

from __future__ import annotations

from collections import defaultdict

from django.core.paginator import Page, Paginator
from django.db.models import Count, Prefetch, Q, QuerySet

from dissect.models import (
    AutoLabel,
    DissectionRun,
    Image,
    ImageSet,
    Layer,
    Network,
    Shard,
    Unit,
    UnitImage,
)
from dissect.storage import media_url


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
                "counting": entry.get("counting", ""),
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
        # Set by the watchdog while the run is stalled (no progress within RUN_STALL_SECONDS).
        "stalled": (run.parameters or {}).get("stalled") or None,
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
    """The unit's aggregate labels from the layers above (they answer ``unit_labels_requested``;
    dissect never imports them), [] when none is installed."""
    from dissect.signals import unit_labels_requested

    return [
        row for _, rows in unit_labels_requested.send(sender=Unit, unit=unit) for row in rows or []
    ]


def unit_neighbors(*, unit: Unit) -> tuple[int | None, int | None]:
    """Indices of the previous and next unit of the same layer (None at the ends)."""
    index = unit.index
    count = unit.layer.unit_count or unit.layer.units.count()
    return (index - 1 if index > 0 else None, index + 1 if index + 1 < count else None)


# --- automatic labels (the pipeline's auto-label stage writes AutoLabel rows) -------------------

# Network Dissection counts a unit as a detector of its best label when IoU > 0.04.
DEFAULT_MIN_IOU = 0.04


def _category_of_best(run_id: int) -> dict[tuple[int, str], str]:
    """{(unit id, label): category} from the per-category rows: the overall row ('' category)
    repeats one of them, which names its category."""
    rows = AutoLabel.objects.filter(unit__layer__run_id=run_id).exclude(category="")
    return {
        (uid, label): cat for uid, label, cat in rows.values_list("unit_id", "label", "category")
    }


def gold_unit_candidates(*, run: DissectionRun, min_iou: float = 0.2) -> list[dict]:
    """Units whose best automatic label has IoU >= ``min_iou``: candidates for a campaign's gold
    units (known answer = the label and its category), best IoU first."""
    categories = _category_of_best(run.pk)
    rows = (
        AutoLabel.objects.filter(unit__layer__run=run, category="", iou__gte=min_iou)
        .order_by("-iou", "unit_id")
        .values_list("unit_id", "unit__layer__name", "unit__index", "label", "iou")
    )
    return [
        {
            "unit_id": uid,
            "layer": layer,
            "unit": index,
            "concept": label,
            "category": categories.get((uid, label), ""),
            "iou": iou,
        }
        for uid, layer, index, label, iou in rows
    ]


def auto_labels_by_layer(*, run: DissectionRun) -> dict[str, dict]:
    """{layer: {"units": n, "labeled": n with IoU >= 0.04, "by_category": {category: n}}} from
    each unit's best overall label (for the run's reports)."""
    categories = _category_of_best(run.pk)
    summary: dict[str, dict] = {}
    counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for layer in Layer.objects.filter(run=run).order_by("order"):
        summary[layer.name] = {"units": layer.unit_count, "labeled": 0, "by_category": {}}
    rows = AutoLabel.objects.filter(
        unit__layer__run=run, category="", iou__gte=DEFAULT_MIN_IOU
    ).values_list("unit_id", "unit__layer__name", "label")
    for uid, layer, label in rows:
        summary[layer]["labeled"] += 1
        counts[layer][categories.get((uid, label), "")] += 1
    for layer, per in counts.items():
        summary[layer]["by_category"] = dict(sorted(per.items()))
    return summary


def gold_from_auto_labels(
    *, run: DissectionRun, min_iou: float = 0.2
) -> dict[int, tuple[str, str]]:
    """{unit id: (concept, category)} of the gold-unit candidates whose category is one of the
    paper's six: the ``gold`` argument of ``annotate.crowd.services.campaign_create``."""
    from core.concepts import CATEGORY_SLUGS

    return {
        g["unit_id"]: (g["concept"].replace("_", " "), g["category"])
        for g in gold_unit_candidates(run=run, min_iou=min_iou)
        if g["category"] in CATEGORY_SLUGS
    }
