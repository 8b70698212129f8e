"""Read-only selectors behind the report pages, the `report` command and the CSV downloads.

Every function returns plain data (dicts, lists, dataclasses) so pages, CSV, SVG and JSON share it.
"""

from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field

from django.db.models import Avg, Count, Q

from annotate.labels.aggregation import counted_statuses, detector_precision
from annotate.labels.agreement import (
    cohen_kappa,
    count_table,
    fleiss_kappa,
    krippendorff_alpha_nominal,
    pairwise_cohen_kappa,
    percent_agreement,
)
from core.concepts.vocabulary import CATEGORY_KEYS
from core.errors import NotFound


class ReportError(NotFound, LookupError):
    """A report was asked for something that does not exist (the message says what to do): 404."""


def network_runs() -> list[dict]:
    """Networks that have crowd labels, each with its latest labeled run."""
    from annotate.labels.models import UnitLabel
    from dissect.models import DissectionRun

    run_ids = (
        UnitLabel.objects.filter(source=UnitLabel.Source.CROWD)
        .values_list("unit__layer__run_id", flat=True)
        .distinct()
    )
    runs = DissectionRun.objects.filter(id__in=run_ids).select_related("network")
    latest: dict[str, DissectionRun] = {}
    for run in runs.order_by("created_at", "id"):
        latest[run.network.name] = run
    return [
        {
            "network": name,
            "network_row": run.network,  # for the untrained mark (includes/untrained.html)
            "run_id": run.pk,
            "training_data": run.network.training_data,
            "status": run.status,
            "layers": list(run.layer_set.values_list("name", flat=True)),
        }
        for name, run in sorted(latest.items())
    ]


def run_for_network(*, network: str, run_id: int | None = None):
    """The run a report covers: `run_id`, or the network's latest run that has crowd labels."""
    from annotate.labels.models import UnitLabel
    from dissect.models import DissectionRun, Network

    if not Network.objects.filter(name=network).exists():
        known = ", ".join(Network.objects.values_list("name", flat=True)) or "none yet"
        raise ReportError(f"network {network!r} not found (known networks: {known})")
    runs = DissectionRun.objects.filter(network__name=network).select_related("network")
    if run_id is not None:
        run = runs.filter(pk=run_id).first()
        if run is None:
            raise ReportError(f"run {run_id} is not a run of network {network!r}")
        return run
    labeled = runs.filter(layer_set__units__labels__source=UnitLabel.Source.CROWD).distinct()
    run = labeled.order_by("-created_at", "-id").first() or runs.order_by("-created_at").first()
    if run is None:
        raise ReportError(f"network {network!r} has no dissection run yet")
    return run


def report_run_choices(*, network: str) -> list[dict]:
    """Every run of ``network`` a report can show, newest first, for the run picker: {id, label,
    crowd_labels (units with a crowd label), detectors, status}. The label says what the run is
    (image set or imported file, date, how many labels) so a user can tell runs apart."""
    from django.db.models import Count, Q

    from annotate.labels.models import UnitLabel
    from dissect.models import DissectionRun

    crowd = Q(layer_set__units__labels__source=UnitLabel.Source.CROWD)
    runs = (
        DissectionRun.objects.filter(network__name=network)
        .select_related("image_set")
        .annotate(
            crowd_labels=Count("layer_set__units__labels", filter=crowd),
            detectors=Count(
                "layer_set__units__labels",
                filter=crowd & Q(layer_set__units__labels__is_detector=True),
            ),
        )
        .order_by("-created_at", "-id")
    )
    choices = []
    for run in runs:
        if run.image_set_id:
            origin = f"image set {run.image_set.name}"
        else:
            origin = f"imported {run.parameters.get('file', '')}".strip()
        labels = (
            f"{run.crowd_labels} crowd labels, {run.detectors} detectors"
            if run.crowd_labels
            else "no crowd labels yet"
        )
        choices.append(
            {
                "id": run.pk,
                "status": run.status,
                "crowd_labels": run.crowd_labels,
                "detectors": run.detectors,
                "label": f"run {run.pk} · {origin} · {run.created_at:%Y-%m-%d} · {labels}",
            }
        )
    return choices


def empty_reason(*, run, report: str, category: str | None = None) -> str:
    """Why ``report`` ("categories", "detectors", "concepts", "precision", "agreement") of
    ``run`` has nothing to show, and what to do next; "" when it has data to show."""
    from annotate.labels.aggregation import detector_min_agreeing, detector_precision
    from annotate.labels.models import UnitLabel

    labels = UnitLabel.objects.filter(unit__layer__run=run, source=UnitLabel.Source.CROWD)
    if not labels.exists():
        if _counted_responses(run=run).exists():
            return (
                f"Run {run.pk} has answers but no crowd labels computed yet: press Recompute "
                "labels above (or wait for the background recompute)."
            )
        return (
            f"No crowd labels on run {run.pk} yet: start a campaign on it (Campaigns → New "
            'campaign) and collect answers, or run "python manage.py demo" to see every report '
            'filled (a simulated crowd on the demo networks), or "python manage.py '
            "import_iclr15\" for the paper's own answers. Another run may have labels: pick it "
            "in the run list above."
        )
    if report in ("detectors", "concepts"):
        detectors = labels.filter(is_detector=True)
        if not detectors.exists():
            return (
                f"{labels.count()} units of run {run.pk} have crowd labels but none is a "
                f"detector yet: a detector needs precision >= {detector_precision():.2f} and at "
                f"least {detector_min_agreeing()} answers naming its concept. Collect more "
                "answers per unit (the campaign's redundancy), then look again."
            )
        if report == "concepts" and category and not detectors.filter(category=category).exists():
            return (
                f"No detector of run {run.pk} has the category {category}: choose another "
                "category, or all categories."
            )
    return ""


def run_layers(*, run, layers: list[str] | None = None) -> list[str]:
    """Layer names of `run` in order, restricted to `layers` (unknown names are an error)."""
    names = list(run.layer_set.order_by("order").values_list("name", flat=True))
    if layers:
        unknown = [name for name in layers if name not in names]
        if unknown:
            raise ReportError(
                f"layer(s) {', '.join(unknown)} not in run {run.pk}; its layers: {', '.join(names)}"
            )
        return [name for name in names if name in layers]
    return names


def _counted_responses(*, run=None, campaign=None):
    from annotate.crowd.models import Answer

    responses = Answer.objects.filter(assignment__status__in=counted_statuses())
    if run is not None:
        responses = responses.filter(assignment__task__unit__layer__run=run)
    if campaign is not None:
        responses = responses.filter(assignment__task__campaign=campaign)
    return responses


def _crowd_labels(*, run, layers: list[str]):
    from annotate.labels.models import UnitLabel

    return UnitLabel.objects.filter(
        source=UnitLabel.Source.CROWD, unit__layer__run=run, unit__layer__name__in=layers
    )


@dataclass
class LayerRow:
    """One layer of a network: category shares, precision, detectors."""

    layer: str
    units: int = 0
    labeled_units: int = 0
    answers: int = 0
    category_counts: dict[str, int] = field(default_factory=dict)
    category_percent: dict[str, float] = field(default_factory=dict)
    mean_precision: float | None = None
    mean_agreement: float | None = None
    detectors: int = 0
    detectors_by_category: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


def layer_report(*, run, layers: list[str] | None = None) -> list[LayerRow]:
    """Per layer: percent of answers per category (the paper's Fig. 9 basis), mean unit precision,
    mean agreement, detector counts overall and per consensus category."""
    from dissect.models import Unit

    names = run_layers(run=run, layers=layers)
    rows = {name: LayerRow(layer=name) for name in names}
    for name, n in (
        Unit.objects.filter(layer__run=run, layer__name__in=names)
        .values_list("layer__name")
        .annotate(n=Count("id"))
    ):
        rows[name].units = n
    answer_counts = (
        _counted_responses(run=run)
        .filter(assignment__task__unit__layer__name__in=names)
        .values_list("assignment__task__unit__layer__name", "category")
        .annotate(n=Count("id"))
    )
    for name, category, n in answer_counts:
        rows[name].category_counts[category] = rows[name].category_counts.get(category, 0) + n
    labels = _crowd_labels(run=run, layers=names)
    for name, labeled, precision, agreement, detectors in labels.values_list(
        "unit__layer__name"
    ).annotate(
        n=Count("id"),
        p=Avg("precision"),
        a=Avg("agreement"),
        d=Count("id", filter=Q(is_detector=True)),
    ):
        row = rows[name]
        row.labeled_units, row.mean_precision = labeled, precision
        row.mean_agreement, row.detectors = agreement, detectors
    for name, category, n in (
        labels.filter(is_detector=True)
        .values_list("unit__layer__name", "category")
        .annotate(n=Count("id"))
    ):
        rows[name].detectors_by_category[category] = n
    for row in rows.values():
        row.answers = sum(row.category_counts.values())
        row.category_counts = {c: row.category_counts.get(c, 0) for c in CATEGORY_KEYS}
        row.category_percent = {
            c: (100.0 * n / row.answers if row.answers else 0.0)
            for c, n in row.category_counts.items()
        }
        row.detectors_by_category = {c: row.detectors_by_category.get(c, 0) for c in CATEGORY_KEYS}
    return [rows[name] for name in names]


def concept_detectors(
    *, run, layers: list[str] | None = None, category: str | None = "object", limit: int = 40
) -> dict:
    """Detector units per concept per layer (the paper's Fig. 10): {layers, rows: [{concept,
    counts: {layer: n}, total}]}, most frequent concept first. `category=None` takes all."""
    names = run_layers(run=run, layers=layers)
    labels = _crowd_labels(run=run, layers=names).filter(is_detector=True)
    if category:
        labels = labels.filter(category=category)
    counts: dict[str, Counter] = defaultdict(Counter)
    for concept, layer, n in labels.values_list("concept_text", "unit__layer__name").annotate(
        n=Count("id")
    ):
        counts[concept][layer] += n
    rows = [
        {"concept": c, "counts": {n: per[n] for n in names}, "total": sum(per.values())}
        for c, per in counts.items()
    ]
    rows.sort(key=lambda r: (-r["total"], r["concept"]))
    return {"layers": names, "category": category, "rows": rows[:limit], "concepts": len(rows)}


def precision_histogram(*, run, layers: list[str] | None = None, bins: int = 10) -> dict:
    """Histogram of unit precision (crowd labels) per layer: {edges, layers: {layer: counts}}."""
    names = run_layers(run=run, layers=layers)
    edges = [i / bins for i in range(bins + 1)]
    per_layer = {name: [0] * bins for name in names}
    for layer, precision in _crowd_labels(run=run, layers=names).values_list(
        "unit__layer__name", "precision"
    ):
        if precision is None:
            continue
        index = min(int(precision * bins), bins - 1)
        per_layer[layer][index] += 1
    return {"edges": edges, "layers": per_layer, "threshold": detector_precision()}


def network_comparison(*, runs: list, layers: list[str] | None = None) -> dict:
    """Several networks on their common layers: {layers, networks: {name: [LayerRow as dict]}}."""
    if len(runs) < 2:
        raise ReportError("pick two networks to compare")
    common = run_layers(run=runs[0])
    for run in runs[1:]:
        theirs = set(run_layers(run=run))
        common = [name for name in common if name in theirs]
    if layers:
        common = [name for name in common if name in layers]
    if not common:
        raise ReportError("these networks have no layer name in common")
    return {
        "layers": common,
        "networks": {
            run.network.name: [row.as_dict() for row in layer_report(run=run, layers=common)]
            for run in runs
        },
    }


def unit_labels(
    *,
    run=None,
    q: str = "",
    layer: str | None = None,
    category: str | None = None,
    detectors_only: bool = False,
):
    """Crowd unit labels, searchable by concept (name, raw answers or merged names)."""
    from annotate.labels.models import UnitLabel

    labels = UnitLabel.objects.filter(source=UnitLabel.Source.CROWD).select_related(
        "unit__layer__run__network", "concept"
    )
    if run is not None:
        labels = labels.filter(unit__layer__run=run)
    if layer:
        labels = labels.filter(unit__layer__name=layer)
    if category:
        labels = labels.filter(category=category)
    if detectors_only:
        labels = labels.filter(is_detector=True)
    if q:
        q = q.strip()
        labels = labels.filter(
            Q(concept_text__icontains=q)
            | Q(concept__merged_from__name__icontains=q)
            | Q(
                unit__tasks__assignments__answer__concept_text__icontains=q,
                unit__tasks__assignments__status__in=counted_statuses(),
            )
        ).distinct()
    return labels.order_by("unit__layer__run_id", "unit__layer__order", "unit__index")


def unit_answers(*, unit_id: int) -> list[dict]:
    """The counted answers of one unit with their worker pseudonyms (for the unit detail)."""
    return list(
        _counted_responses()
        .filter(assignment__task__unit_id=unit_id)
        .order_by("id")
        .values(
            "id",
            "concept_text",
            "concept__name",
            "category",
            "precision",
            "assignment__worker__pseudonym",
            "assignment__submitted_at",
            "assignment__active_seconds",
            "assignment__task__campaign__name",
        )
    )


# --- Agreement ------------------------------------------------------------------------------


def agreement_report(*, run=None, campaign=None, method: str | None = None) -> dict:
    """`compute_agreement_report`, cached until an answer or a label of its scope changes (fitting
    the crowd model takes a second or two on a few thousand answers)."""
    from django.core.cache import cache
    from django.db.models import Max

    from annotate.labels.models import UnitLabel

    responses = _counted_responses(run=run, campaign=campaign)
    stamp = responses.aggregate(n=Count("id"), last=Max("id"))
    labels = UnitLabel.objects.filter(source=UnitLabel.Source.CROWD)
    labels = labels.filter(unit__layer__run=run) if run is not None else labels
    if campaign is not None:
        labels = labels.filter(unit__tasks__campaign=campaign)
    changed = labels.aggregate(last=Max("updated_at"))["last"]
    key = ":".join(
        str(x)
        for x in (
            "labels-agreement",
            getattr(run, "pk", None),
            getattr(campaign, "pk", None),
            method,
            stamp["n"],
            stamp["last"],
            changed.isoformat() if changed else None,
        )
    )
    report = cache.get(key)
    if report is None:
        report = compute_agreement_report(run=run, campaign=campaign, method=method)
        cache.set(key, report, 3600)
    return report


def compute_agreement_report(*, run=None, campaign=None, method: str | None = None) -> dict:
    """Agreement per layer (Fleiss' kappa on categories, Krippendorff's alpha on categories and on
    tile flags, concept agreement), per worker (answers, agreement with the consensus, skill from a
    crowd model) and the most informative worker pairs (Cohen's kappa)."""
    from annotate.labels.crowd_models import DEFAULT_METHOD, aggregate, tile_flag_answers
    from annotate.labels.models import UnitLabel

    method = method or DEFAULT_METHOD
    rows = list(
        _counted_responses(run=run, campaign=campaign)
        .order_by("id")
        .values_list(
            "assignment__task__unit_id",
            "assignment__task__unit__layer__name",
            "assignment__worker__pseudonym",
            "category",
            "concept__name",
            "concept_text",
            "flagged_tiles",
            "assignment__task__tile_order",
            "precision",
        )
    )
    unit_ids = {r[0] for r in rows}
    consensus = dict(
        UnitLabel.objects.filter(unit_id__in=unit_ids, source=UnitLabel.Source.CROWD).values_list(
            "unit_id", "concept_text"
        )
    )
    consensus_category = dict(
        UnitLabel.objects.filter(unit_id__in=unit_ids, source=UnitLabel.Source.CROWD).values_list(
            "unit_id", "category"
        )
    )
    from annotate.labels.aggregation import answers_for_units

    normalized = {
        a.response_id: a.concept
        for answers in answers_for_units(unit_ids=unit_ids).values()
        for a in answers
    }
    response_ids = list(
        _counted_responses(run=run, campaign=campaign).order_by("id").values_list("id", flat=True)
    )
    concept_of = [normalized.get(rid, "") for rid in response_ids]

    layers: dict[str, dict] = {}
    by_layer_ratings: dict[str, list] = defaultdict(list)
    by_layer_concepts: dict[str, dict] = defaultdict(lambda: defaultdict(list))
    by_layer_flags: dict[str, dict] = defaultdict(lambda: defaultdict(list))
    worker_stats: dict[str, Counter] = defaultdict(Counter)
    worker_labels: dict[str, dict] = defaultdict(dict)
    category_answers, flag_inputs = [], []
    for (unit, layer, worker, category, _cn, _ct, flagged, order, _p), concept in zip(
        rows, concept_of, strict=True
    ):
        by_layer_ratings[layer].append((unit, category))
        by_layer_concepts[layer][unit].append(concept)
        flagged_set = set(flagged or [])
        for tile in order or []:
            by_layer_flags[layer][(unit, tile)].append(tile in flagged_set)
        if order:
            flag_inputs.append((unit, worker, order, flagged or []))
        stats = worker_stats[worker]
        stats["answers"] += 1
        stats["concept_agrees"] += concept == consensus.get(unit)
        stats["category_agrees"] += category == consensus_category.get(unit)
        worker_labels[worker][unit] = category
        category_answers.append((unit, worker, category))
    for layer, ratings in by_layer_ratings.items():
        table, _ = count_table(ratings, categories=CATEGORY_KEYS)
        per_unit_categories = defaultdict(list)
        for unit, category in ratings:
            per_unit_categories[unit].append(category)
        layers[layer] = {
            "layer": layer,
            "units": len(table),
            "answers": len(ratings),
            "fleiss_kappa_category": fleiss_kappa(table),
            "alpha_category": krippendorff_alpha_nominal(per_unit_categories.values()),
            "concept_agreement": percent_agreement(by_layer_concepts[layer].values()),
            "alpha_tile_flags": krippendorff_alpha_nominal(by_layer_flags[layer].values())
            if by_layer_flags[layer]
            else None,
        }
    model = aggregate(answers=category_answers, method=method) if category_answers else None
    flag_model = (
        aggregate(answers=tile_flag_answers(flag_inputs), method=method) if flag_inputs else None
    )
    workers = []
    for worker, stats in sorted(worker_stats.items()):
        workers.append(
            {
                "worker": worker,
                "answers": stats["answers"],
                "concept_agreement": stats["concept_agrees"] / stats["answers"],
                "category_agreement": stats["category_agrees"] / stats["answers"],
                "category_skill": model.worker_skill.get(worker) if model else None,
                "flag_skill": flag_model.worker_skill.get(worker) if flag_model else None,
            }
        )
    pairs = pairwise_cohen_kappa(worker_labels, min_common=5)
    pairs.sort(key=lambda p: -p.common_items)
    model_vs_plurality = None
    if model:
        same = sum(model.labels.get(u) == c for u, c in consensus_category.items())
        model_vs_plurality = same / len(consensus_category) if consensus_category else None
    return {
        "method": method,
        "layers": list(layers.values()),
        "workers": workers,
        "pairs": [asdict(p) for p in pairs[:30]],
        "model_vs_plurality": model_vs_plurality,
        "answers": len(rows),
    }


__all__ = [
    "ReportError",
    "agreement_report",
    "compute_agreement_report",
    "cohen_kappa",
    "concept_detectors",
    "layer_report",
    "network_comparison",
    "network_runs",
    "precision_histogram",
    "run_for_network",
    "run_layers",
    "unit_answers",
    "unit_labels",
]
