"""Reads for explain() and the crowd-vs-automatic comparison. No torch here.

explain sits above dissect and labels: it reads their models and selectors directly, and compares
concepts with the one normalisation of ``core.concepts``.
"""

from __future__ import annotations

from collections.abc import Sequence

from django.db.models import Count, Q, QuerySet

from annotate.labels.models import UnitLabel
from core.concepts.normalize import normalize_concept
from dissect.models import AutoLabel, DissectionRun, Layer, Network
from dissect.selectors import DEFAULT_MIN_IOU, _category_of_best

__all__ = [
    "LABEL_SOURCES",
    "DEFAULT_MIN_IOU",
    "explain_networks",
    "labeled_units",
    "labels_run",
    "crowd_auto_agreement",
    "concept_key",
    "classifier_kind",
    "network_notes",
    "explain_refusal",
]

LABEL_SOURCES = ("crowd", "auto", "both")


def concept_key(text: str) -> str:
    """A concept's normalized name (plurals, synonyms and spelling variants fold together), for
    comparing a crowd concept with an automatic label such as ``traffic_lights``."""
    return normalize_concept((text or "").replace("_", " "), merges={}).name


def _crowd_detectors(run_ids: Sequence[int]) -> QuerySet[UnitLabel]:
    return UnitLabel.objects.filter(
        unit__layer__run_id__in=run_ids, source=UnitLabel.Source.CROWD, is_detector=True
    )


def _auto_units(run_ids: Sequence[int], min_iou: float) -> QuerySet[AutoLabel]:
    return AutoLabel.objects.filter(unit__layer__run_id__in=run_ids, category="", iou__gte=min_iou)


def labels_run(*, network: Network, source: str = "both") -> DissectionRun | None:
    """The newest finished run of ``network`` with labels of ``source`` (crowd, auto or both =
    either); explain() uses its units' thresholds and top scores."""
    runs = DissectionRun.objects.filter(network=network).exclude(
        status__in=[DissectionRun.Status.FAILED, DissectionRun.Status.CANCELLED]
    )
    crowd = Q(pk__in=_crowd_detectors(runs.values("pk")).values("unit__layer__run_id"))
    auto = Q(layer_set__units__auto_labels__category="")
    wanted = {"crowd": crowd, "auto": auto}.get(source, crowd | auto)
    return runs.filter(wanted).distinct().order_by("-created_at", "-pk").first()


def explain_networks() -> list[Network]:
    """Networks with at least one run that has crowd detectors or automatic labels, the one
    with the most automatically labeled units first (the page's default), then by name."""
    crowd_runs = UnitLabel.objects.filter(source=UnitLabel.Source.CROWD).values(
        "unit__layer__run_id"
    )
    crowd = Q(runs__in=crowd_runs)
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
    from annotate.explain.labeled import LabeledUnit

    if source not in LABEL_SOURCES:
        raise ValueError(f"labels: {source!r} is not one of {', '.join(LABEL_SOURCES)}")
    run = run or labels_run(network=network, source=source)
    if run is None:
        return None, []
    result = []
    if source in ("crowd", "both"):
        rows = _crowd_detectors([run.pk]).values_list(
            "unit_id",
            "unit__layer__name",
            "unit__index",
            "unit__threshold",
            "unit__top_score",
            "concept_text",
            "category",
            "precision",
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
        for uid, concept, category, detector in UnitLabel.objects.filter(
            unit__layer__run=run, source=UnitLabel.Source.CROWD
        ).values_list("unit_id", "concept_text", "category", "is_detector")
    }
    out = []
    layers = Layer.objects.filter(run=run).order_by("order")
    for layer in layers:
        ids = list(layer.units.values_list("id", flat=True))
        both = [u for u in ids if u in auto and u in crowd]
        concept_same = [u for u in both if concept_key(crowd[u][0]) == concept_key(auto[u][0])]
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


def classifier_kind(*, network: Network) -> str:
    """What the network's output classes are: "scene" (scene-trained: demo-places, Places*),
    "object class" (object-trained: demo-objects, ImageNet) or "class" (unknown)."""
    trained_on = (network.training_data or "").lower()
    if network.arch == "demo-objects" or "object" in trained_on or "imagenet" in trained_on:
        return "object class"
    if network.arch == "demo-places" or "places" in trained_on or "scene" in trained_on:
        return "scene"
    return "object class" if len(network.class_names or []) == 1000 else "class"


def network_notes(*, network: Network) -> list[str]:
    """What a user must know before trusting this network's explanations: a demo network knows
    only the demo world; an untrained one has random weights; an imported one cannot run."""
    from dissect.services.networks import BUILTIN_NETWORKS

    notes = []
    if network.source == Network.Source.BUILTIN and network.arch in BUILTIN_NETWORKS:
        notes.append(
            f"{network.name} is a demo network: it was trained only on the demo world's "
            "synthetic scenes (simple shapes on plain backgrounds) and knows nothing else. On "
            "photos its classes and concepts mean nothing; register a real network (see "
            "docs/pipeline.md, 'Registering a Places365 network') to explain photos."
        )
    if network.is_untrained:
        notes.append(
            f"{network.name} is untrained (random weights, registered with --random-init): "
            "its units' labels and this explanation say nothing about a trained network."
        )
    if network.source == Network.Source.IMPORTED:
        notes.append(f"{network.name} has no weights (imported labels only): it cannot explain.")
    return notes


def explain_refusal(*, network: Network, source: str, min_iou: float) -> str:
    """Why ``network`` has no labeled units explain() can use with ``source`` labels from IoU
    ``min_iou``, and what to do: the real reason, checked from the most basic up."""
    from annotate.labels.aggregation import detector_min_agreeing, detector_precision

    runs = DissectionRun.objects.filter(network=network).exclude(
        status__in=[DissectionRun.Status.FAILED, DissectionRun.Status.CANCELLED]
    )
    crowd = UnitLabel.objects.filter(unit__layer__run__in=runs, source=UnitLabel.Source.CROWD)
    if network.source == Network.Source.IMPORTED:
        detectors = crowd.filter(is_detector=True).count()
        return (
            f"network {network.name} has no weights: its labels ({detectors} detector units) "
            "were imported from annotation files, but explaining an image needs a forward pass "
            "through the network. Register a checkpoint under a new name (`python manage.py "
            "register_network NAME --arch ARCH --checkpoint FILE`; docs/pipeline.md, "
            "'Registering a Places365 network'), dissect it and label its units, then explain "
            "with that network."
        )
    if not runs.exists() and network.source == Network.Source.BUILTIN:
        return (
            f"network {network.name} is built in but not dissected yet: `python manage.py "
            "demo` dissects it on the demo world and labels its units (or `python manage.py "
            f"dissect --network {network.name} --images DIR --layers conv5`)"
        )
    if not runs.exists():
        return (
            f"network {network.name} has no dissection run yet: dissect it first (`python "
            f"manage.py dissect --network {network.name} --images DIR --layers LAYER`), then "
            "label its units (a campaign, or `python manage.py auto_label RUN_ID`)"
        )
    reasons = []
    if source in ("crowd", "both"):
        if not crowd.exists():
            reasons.append(
                "no crowd labels yet: finish a labeling campaign on one of its runs (or run "
                "`python manage.py demo` for the demo networks)"
            )
        elif not crowd.filter(is_detector=True).exists():
            reasons.append(
                f"{crowd.count()} units have crowd labels but none is a detector yet (precision "
                f">= {detector_precision():.2f} with >= {detector_min_agreeing()} agreeing "
                "answers): collect more answers on its campaign"
            )
    if source in ("auto", "both"):
        auto = AutoLabel.objects.filter(unit__layer__run__in=runs, category="")
        best = auto.order_by("-iou").values_list("iou", flat=True).first()
        if best is None:
            reasons.append(
                "no automatic labels: `python manage.py auto_label RUN_ID` computes them (the "
                "run's image set needs pixel labels, e.g. Broden)"
            )
        elif best < min_iou:
            reasons.append(
                f"its best automatic label has IoU {best:.3f}, below the IoU level {min_iou:g}: "
                "lower the level"
            )
    if not reasons:
        reasons.append(
            "its labeled units have no activation threshold (their run did not finish its "
            "dissection): resume the run (`python manage.py dissect --resume RUN_ID`)"
        )
    return f"network {network.name} cannot explain yet: " + "; and ".join(reasons)
