"""Reads for explain(), automatic labels and their agreement with the crowd. No torch here.

dissect never imports annotate: crowd labels are read through the ``labels`` reverse relation
(annotate's UnitLabel) with plain field lookups.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence

from django.db.models import Count, Q, QuerySet

from dissect.models import AutoLabel, DissectionRun, Layer, Network, Unit

__all__ = [
    "LABEL_SOURCES",
    "DEFAULT_MIN_IOU",
    "explain_networks",
    "labeled_units",
    "labels_run",
    "crowd_auto_agreement",
    "gold_unit_candidates",
    "gold_from_auto_labels",
    "auto_labels_by_layer",
    "normalize_concept",
]

LABEL_SOURCES = ("crowd", "auto", "both")
# Network Dissection counts a unit as a detector of its best label when IoU > 0.04.
DEFAULT_MIN_IOU = 0.04


def normalize_concept(text: str) -> str:
    """Lower case, underscores and hyphens as spaces, single spaces (for comparing concepts)."""
    return re.sub(r"\s+", " ", re.sub(r"[_\-]+", " ", (text or "").lower())).strip()


def _crowd_units(run_ids: Sequence[int]) -> QuerySet[Unit]:
    return Unit.objects.filter(
        layer__run_id__in=run_ids, labels__source="crowd", labels__is_detector=True
    )


def _auto_units(run_ids: Sequence[int], min_iou: float) -> QuerySet[AutoLabel]:
    return AutoLabel.objects.filter(unit__layer__run_id__in=run_ids, category="", iou__gte=min_iou)


def labels_run(*, network: Network, source: str = "both") -> DissectionRun | None:
    """The newest finished run of ``network`` with labels of ``source`` (crowd, auto or both =
    either); explain() uses its units' thresholds and top scores."""
    runs = DissectionRun.objects.filter(network=network).exclude(
        status__in=[DissectionRun.Status.FAILED, DissectionRun.Status.CANCELLED]
    )
    crowd = Q(layer_set__units__labels__source="crowd", layer_set__units__labels__is_detector=True)
    auto = Q(layer_set__units__auto_labels__category="")
    wanted = {"crowd": crowd, "auto": auto}.get(source, crowd | auto)
    return runs.filter(wanted).distinct().order_by("-created_at", "-pk").first()


def explain_networks() -> list[Network]:
    """Networks with at least one run that has crowd detectors or automatic labels, the one
    with the most automatically labeled units first (the page's default), then by name."""
    crowd = Q(runs__layer_set__units__labels__source="crowd")
    auto = Q(runs__layer_set__units__auto_labels__category="")
    networks = list(Network.objects.filter(crowd | auto).distinct())
    counts = dict(
        AutoLabel.objects.filter(category="", iou__gte=DEFAULT_MIN_IOU)
        .values("unit__layer__run__network")
        .annotate(n=Count("id"))
        .values_list("unit__layer__run__network", "n")
    )
    return sorted(networks, key=lambda n: (-counts.get(n.pk, 0), n.name))


def labeled_units(
    *,
    network: Network,
    source: str = "both",
    run: DissectionRun | None = None,
    min_iou: float = DEFAULT_MIN_IOU,
) -> tuple[DissectionRun | None, list]:
    """(run, [LabeledUnit]) for explain(): the crowd's detector units (concept, category,
    precision) and/or units whose best automatic label has IoU >= ``min_iou`` (label, its
    category, IoU), with the run's thresholds and top-1 scores. A unit labeled by both sources
    appears twice (one entry per source)."""
    from dissect.explain.labeled import LabeledUnit

    if source not in LABEL_SOURCES:
        raise ValueError(f"labels: {source!r} is not one of {', '.join(LABEL_SOURCES)}")
    run = run or labels_run(network=network, source=source)
    if run is None:
        return None, []
    result = []
    if source in ("crowd", "both"):
        rows = _crowd_units([run.pk]).values_list(
            "id",
            "layer__name",
            "index",
            "threshold",
            "top_score",
            "labels__concept_text",
            "labels__category",
            "labels__precision",
        )
        for uid, layer, index, thr, top, concept, category, precision in rows:
            if thr is None or not concept:
                continue
            result.append(
                LabeledUnit(
                    layer, index, concept, category or "", thr, top or 0.0, "crowd", precision, uid
                )
            )
    if source in ("auto", "both"):
        per_category = _category_of_best(run.pk)
        rows = _auto_units([run.pk], min_iou).values_list(
            "unit_id",
            "unit__layer__name",
            "unit__index",
            "unit__threshold",
            "unit__top_score",
            "label",
            "iou",
        )
        for uid, layer, index, thr, top, label, iou in rows:
            if thr is None:
                continue
            category = per_category.get((uid, label), "")
            result.append(
                LabeledUnit(layer, index, label, category, thr, top or 0.0, "auto", iou, uid)
            )
    result.sort(key=lambda u: (u.layer, u.unit, u.source))
    return run, result


def _category_of_best(run_id: int) -> dict[tuple[int, str], str]:
    """{(unit id, label): category} from the per-category rows: the overall row ('' category)
    repeats one of them, which names its category."""
    rows = AutoLabel.objects.filter(unit__layer__run_id=run_id).exclude(category="")
    return {
        (uid, label): cat for uid, label, cat in rows.values_list("unit_id", "label", "category")
    }


def crowd_auto_agreement(*, run: DissectionRun) -> list[dict]:
    """Per layer of ``run``: units with a crowd label, with an automatic label, with both, and
    among those with both how many agree on the concept (normalized text) and on the category.
    The automatic label compared is the unit's best overall label; its category is that label's."""
    categories = _category_of_best(run.pk)
    auto = {
        uid: (label, categories.get((uid, label), ""), iou)
        for uid, label, iou in AutoLabel.objects.filter(
            unit__layer__run=run, category=""
        ).values_list("unit_id", "label", "iou")
    }
    crowd = {
        uid: (concept, category, detector)
        for uid, concept, category, detector in Unit.objects.filter(
            layer__run=run, labels__source="crowd"
        ).values_list("id", "labels__concept_text", "labels__category", "labels__is_detector")
    }
    out = []
    layers = Layer.objects.filter(run=run).order_by("order")
    for layer in layers:
        ids = list(layer.units.values_list("id", flat=True))
        both = [u for u in ids if u in auto and u in crowd]
        concept_same = [
            u for u in both if normalize_concept(crowd[u][0]) == normalize_concept(auto[u][0])
        ]
        category_same = [u for u in both if crowd[u][1] and crowd[u][1] == auto[u][1]]
        out.append(
            {
                "layer": layer.name,
                "units": len(ids),
                "crowd": sum(1 for u in ids if u in crowd),
                "crowd_detectors": sum(1 for u in ids if u in crowd and crowd[u][2]),
                "auto": sum(1 for u in ids if u in auto),
                "both": len(both),
                "concept_agree": len(concept_same),
                "category_agree": len(category_same),
                "concept_rate": len(concept_same) / len(both) if both else None,
                "category_rate": len(category_same) / len(both) if both else None,
            }
        )
    return out


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
    from dissect.concepts import CATEGORY_SLUGS

    return {
        g["unit_id"]: (g["concept"].replace("_", " "), g["category"])
        for g in gold_unit_candidates(run=run, min_iou=min_iou)
        if g["category"] in CATEGORY_SLUGS
    }


def demo_images(*, run: DissectionRun, limit: int = 12) -> list:
    """Images of the run's set to try explain() on: the top image of each best automatically
    labeled unit (so labeled units fire on them), distinct, best IoU first; else the set's "val"
    images (or its first ones)."""
    from dissect.models import Image, UnitImage

    ranked = (
        UnitImage.objects.filter(
            unit__layer__run=run,
            kind=UnitImage.Kind.TOP,
            rank=0,
            unit__auto_labels__category="",
            unit__auto_labels__iou__gte=DEFAULT_MIN_IOU,
        )
        .order_by("-unit__auto_labels__iou", "image_id")
        .values_list("image_id", flat=True)[: limit * 20]
    )
    ids = list(dict.fromkeys(ranked))[:limit]
    if ids:
        by_id = Image.objects.in_bulk(ids)
        return [by_id[i] for i in ids if i in by_id]
    images = Image.objects.filter(image_set_id=run.image_set_id, status=Image.Status.OK)
    val = images.filter(split="val")
    return list((val if val.exists() else images).order_by("id")[:limit])
