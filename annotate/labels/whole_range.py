"""Whole-range measures of unit labels from verification answers (issue 16).

A verification task asked, for images drawn across a unit's activation range with known
inclusion probabilities (``dissect.verification_sampling``: rank strata, equal draws per
stratum), "does the highlighted region show CONCEPT?". From those answers, per unit:

- **Truth per image** from a binary noise model, never raw majority: one-coin Dawid–Skene
  (``crowd_models.aggregate``, crowd-kit) fitted on every yes/no answer of the campaign at once,
  so each worker gets one reliability from all the images they answered (planted checks too);
  the posterior P(yes) of each image is its soft truth. "Can't tell" is no vote.
- **The unit fires** on an image when its max activation exceeds its threshold (the tile's mask
  is not empty); the label's prediction is "fires", the truth "the concept is there".
- **Estimators**, weighted by the inverse inclusion probability (Horvitz–Thompson weights; within
  a stratum the images actually answered share its size, so an unanswered image does not bias
  it), all self-normalised ratios of weighted sums: precision = TP / (TP + FP), recall =
  TP / (TP + FN), F1 = 2 TP / (2 TP + FP + FN), and the weighted Pearson correlation between
  activation and presence. They are consistent estimates of the same quantities over every image
  of the run's image set.
- **Confidence intervals**: percentile bootstrap (``BOOTSTRAP_REPS`` resamples, seeded),
  resampling images with replacement within each stratum (the design's own independence), 95 %.
- **Label maps**: where the image set has them, the same measures with the maps' truth (the
  concept covers at least ``PRESENT_COVERAGE`` of the region) beside the crowd's.

``weighted_measures`` and ``bootstrap_measures`` are plain numpy; ``campaign_unit_measures`` reads
a campaign's verification answers.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

MEASURES: tuple[str, ...] = ("precision", "recall", "f1", "correlation")
BOOTSTRAP_REPS = 1000
CONFIDENCE_LEVEL = 0.95
# "Holds at the top but fails over the range": the top band's yes share at least this, and the
# whole-range F1 below FAILS_F1.
HOLDS_AT_TOP = 0.75
FAILS_F1 = 0.5


@dataclass(frozen=True)
class Estimate:
    """A measure's estimate and its bootstrap interval (None where undefined, e.g. a recall
    when no image shows the concept)."""

    value: float | None
    low: float | None = None
    high: float | None = None


def weighted_measures(
    *,
    activation: Sequence[float],
    present: Sequence[float],
    fires: Sequence[bool],
    weight: Sequence[float],
) -> dict[str, float | None]:
    """Precision, recall, F1 of "fires" as a predictor of "present" (soft truth in [0, 1]) and
    the Pearson correlation of activation with presence, every image weighted by ``weight``
    (its inverse inclusion probability). With all weights 1 over a whole population these are
    the population's exact values."""
    a = np.asarray(activation, dtype=np.float64)
    z = np.asarray(present, dtype=np.float64)
    f = np.asarray(fires, dtype=np.float64)
    w = np.asarray(weight, dtype=np.float64)
    tp, fp, fn = (w * f * z).sum(), (w * f * (1 - z)).sum(), (w * (1 - f) * z).sum()
    out: dict[str, float | None] = {
        "precision": _ratio(tp, tp + fp),
        "recall": _ratio(tp, tp + fn),
        "f1": _ratio(2 * tp, 2 * tp + fp + fn),
        "correlation": None,
    }
    total = w.sum()
    if total > 0:
        ma, mz = (w * a).sum() / total, (w * z).sum() / total
        cov = (w * (a - ma) * (z - mz)).sum()
        var = (w * (a - ma) ** 2).sum() * (w * (z - mz) ** 2).sum()
        out["correlation"] = float(cov / math.sqrt(var)) if var > 0 else None
    return out


def _ratio(num: float, den: float) -> float | None:
    return float(num / den) if den > 0 else None


def bootstrap_measures(
    *,
    activation: Sequence[float],
    present: Sequence[float],
    fires: Sequence[bool],
    weight: Sequence[float],
    stratum: Sequence[int],
    reps: int = BOOTSTRAP_REPS,
    seed: int = 0,
    level: float = CONFIDENCE_LEVEL,
) -> dict[str, Estimate]:
    """``weighted_measures`` with percentile-bootstrap intervals: each resample redraws, with
    replacement, as many images as each stratum has (weights kept), so the interval reflects the
    stratified design. Deterministic in ``seed``."""
    a, z = np.asarray(activation, float), np.asarray(present, float)
    f, w = np.asarray(fires, bool), np.asarray(weight, float)
    s = np.asarray(stratum)
    point = weighted_measures(activation=a, present=z, fires=f, weight=w)
    if len(a) == 0:
        return {m: Estimate(None) for m in MEASURES}
    rng = np.random.default_rng(seed)
    groups = [np.flatnonzero(s == b) for b in np.unique(s)]
    draws: dict[str, list[float]] = defaultdict(list)
    for _ in range(reps):
        idx = np.concatenate([g[rng.integers(0, len(g), len(g))] for g in groups])
        values = weighted_measures(activation=a[idx], present=z[idx], fires=f[idx], weight=w[idx])
        for name, value in values.items():
            if value is not None:
                draws[name].append(value)
    tail = (1 - level) / 2 * 100
    out = {}
    for name in MEASURES:
        values = draws[name]
        if point[name] is None or not values:
            out[name] = Estimate(point[name])
            continue
        low, high = np.percentile(values, [tail, 100 - tail])
        out[name] = Estimate(point[name], float(low), float(high))
    return out


# -- the noise model ---------------------------------------------------------------------------


@dataclass(frozen=True)
class NoiseModel:
    """One-coin Dawid–Skene over binary answers: P(yes) per image, accuracy per worker."""

    p_yes: dict
    worker_accuracy: dict


def binary_noise_model(answers: Sequence[tuple]) -> NoiseModel:
    """Fit one-coin Dawid–Skene on ``answers`` = [(image key, worker, 'yes' | 'no')] ('cant'
    answers are left out by the caller). Returns each image's posterior P(yes) and each
    worker's estimated accuracy."""
    from annotate.labels.crowd_models import aggregate

    if not answers:
        return NoiseModel({}, {})
    estimate = aggregate(answers=list(answers), method="one_coin_ds")
    p_yes = {
        key: (conf if estimate.labels[key] == "yes" else 1.0 - conf)
        for key, conf in estimate.confidence.items()
    }
    return NoiseModel(p_yes, dict(estimate.worker_skill))


# -- a campaign's units ------------------------------------------------------------------------


@dataclass
class UnitMeasures:
    """Whole-range measures of one unit's label (one verification task)."""

    task_id: int
    unit_id: int
    layer: str
    unit_index: int
    concept: str
    source: str
    category: str
    population: int
    images_answered: int
    workers: int
    top_yes_share: float | None  # share judged present among the top band (top 0.5 %)
    paper_precision: float | None  # the crowd label's top-K precision (the paper's), if any
    crowd: dict[str, Estimate] = field(default_factory=dict)
    maps: dict[str, Estimate] | None = None

    @property
    def holds_at_top_fails_over_range(self) -> bool:
        f1 = self.crowd.get("f1", Estimate(None)).value
        top = self.top_yes_share
        return top is not None and top >= HOLDS_AT_TOP and (f1 is None or f1 < FAILS_F1)


def _stratum_weights(items, strata: list[dict]) -> dict[int, float]:
    """Weight per item: its stratum's size over the stratum's images that have a truth (the
    Horvitz-Thompson weight 1/pi when every drawn image was answered)."""
    size = {s["stratum"]: s["size"] for s in strata}
    counted: dict[int, int] = defaultdict(int)
    for item in items:
        counted[item.stratum] += 1
    return {
        item.pk: (
            size[item.stratum] / counted[item.stratum]
            if item.stratum in size
            else 1 / item.inclusion_probability
        )
        for item in items
    }


def _measures(items, truth: dict[int, float], strata, *, seed: int, reps: int):
    items = [i for i in items if i.pk in truth]
    weights = _stratum_weights(items, strata)
    return bootstrap_measures(
        activation=[i.activation for i in items],
        present=[truth[i.pk] for i in items],
        fires=[not i.silent for i in items],
        weight=[weights[i.pk] for i in items],
        stratum=[i.stratum for i in items],
        seed=seed,
        reps=reps,
    ), items


def campaign_noise_model(*, campaign) -> NoiseModel:
    """The one-coin Dawid–Skene fit of every yes/no verification answer of ``campaign``
    (submitted or not: each answer is stored on its own), images keyed by item id."""
    from annotate.crowd.models import VerificationAnswer

    rows = VerificationAnswer.objects.filter(
        assignment__task__campaign=campaign, answer__in=["yes", "no"]
    ).values_list("item_id", "assignment__worker__pseudonym", "answer")
    return binary_noise_model(list(rows))


def campaign_check_results(*, campaign) -> dict[str, tuple[int, int]]:
    """{worker pseudonym: (planted checks answered right, planted checks answered)} in
    ``campaign``: a 'fits' check is right when answered yes, a 'not' check when answered no
    (a "can't tell" is not right). Careless workers show here as they do on controls."""
    from annotate.crowd.models import VerificationAnswer

    results: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for worker, planted, answer in VerificationAnswer.objects.filter(
        assignment__task__campaign=campaign, item__planted__in=["fits", "not"]
    ).values_list("assignment__worker__pseudonym", "item__planted", "answer"):
        results[worker][1] += 1
        results[worker][0] += answer == ("yes" if planted == "fits" else "no")
    return {w: (right, seen) for w, (right, seen) in results.items()}


def campaign_unit_measures(
    *, campaign, reps: int = BOOTSTRAP_REPS, model: NoiseModel | None = None
) -> list[UnitMeasures]:
    """Per verification task of ``campaign``: the crowd's whole-range measures (noise-model
    truth) and, where label maps gave coverage, the maps' measures, with intervals."""
    from annotate.crowd.models import VerificationAnswer, VerificationTask
    from annotate.labels.models import UnitLabel
    from dissect.models import AutoLabel
    from dissect.verification_sampling import PRESENT_COVERAGE

    model = model or campaign_noise_model(campaign=campaign)
    tasks = list(
        VerificationTask.objects.filter(campaign=campaign)
        .select_related("unit__layer")
        .prefetch_related("items")
        .order_by("unit__layer__order", "unit__index", "label_source")
    )
    unit_ids = [t.unit_id for t in tasks]
    crowd_labels = {
        row[0]: row[1:]
        for row in UnitLabel.objects.filter(
            unit_id__in=unit_ids, source=UnitLabel.Source.CROWD
        ).values_list("unit_id", "category", "precision")
    }
    auto_category = {
        (unit_id, label): category
        for unit_id, label, category in AutoLabel.objects.filter(unit_id__in=unit_ids)
        .exclude(category="")
        .values_list("unit_id", "label", "category")
    }
    workers = defaultdict(set)
    for task_id, worker_id in VerificationAnswer.objects.filter(
        assignment__task__in=tasks
    ).values_list("assignment__task_id", "assignment__worker_id"):
        workers[task_id].add(worker_id)
    out = []
    for task in tasks:
        sampled = [i for i in task.items.all() if not i.planted]
        crowd, answered = _measures(sampled, model.p_yes, task.strata, seed=task.pk, reps=reps)
        top = [model.p_yes[i.pk] for i in answered if i.stratum == 0]
        map_truth = {
            i.pk: float(i.coverage >= PRESENT_COVERAGE) for i in sampled if i.coverage is not None
        }
        maps = None
        if map_truth:
            maps, _ = _measures(sampled, map_truth, task.strata, seed=task.pk, reps=reps)
        category, paper = "", None
        if task.label_source == "crowd" and task.unit_id in crowd_labels:
            category, paper = crowd_labels[task.unit_id]
        elif task.label_source == "auto":
            category = auto_category.get((task.unit_id, task.concept), "")
            paper = crowd_labels.get(task.unit_id, (None, None))[1]
        out.append(
            UnitMeasures(
                task_id=task.pk, unit_id=task.unit_id, layer=task.unit.layer.name,
                unit_index=task.unit.index, concept=task.concept, source=task.label_source,
                category=category or "", population=task.population,
                images_answered=len(answered), workers=len(workers[task.pk]),
                top_yes_share=float(np.mean(top)) if top else None, paper_precision=paper,
                crowd=crowd, maps=maps,
            )
        )  # fmt: skip
    return out


# -- summaries for the report ------------------------------------------------------------------


def _mean(values) -> float | None:
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


def summary_by(rows: Sequence[UnitMeasures], *, key) -> list[dict]:
    """Mean of each measure (crowd truth), the top band's yes share and the paper's top-K
    precision over groups of units ``key(row)`` (e.g. (layer, source)), in first-seen order."""
    groups: dict = {}
    for row in rows:
        groups.setdefault(key(row), []).append(row)
    out = []
    for group, members in groups.items():
        entry = {"group": group, "units": len(members)}
        entry["top_yes_share"] = _mean(r.top_yes_share for r in members)
        entry["paper_precision"] = _mean(r.paper_precision for r in members)
        for name in MEASURES:
            entry[name] = _mean(r.crowd[name].value for r in members)
            entry[f"maps_{name}"] = _mean(r.maps[name].value for r in members if r.maps)
        out.append(entry)
    return out


def holds_at_top_fails_over_range(rows: Sequence[UnitMeasures]) -> list[UnitMeasures]:
    """Units whose label holds among their top images but fails over the whole range."""
    return [r for r in rows if r.holds_at_top_fails_over_range]


def campaign_report(*, campaign, reps: int) -> tuple[list[UnitMeasures], NoiseModel, dict]:
    """(unit measures, noise model, planted-check results) of ``campaign``, cached until an
    answer is added or a label of the run changes: the fit and the bootstraps take tens of
    seconds on a real campaign, and a report page must not redo them on every view."""
    from django.core.cache import cache
    from django.db.models import Count, Max

    from annotate.crowd.models import VerificationAnswer
    from annotate.labels.models import UnitLabel

    answers = VerificationAnswer.objects.filter(assignment__task__campaign=campaign).aggregate(
        n=Count("pk"), last=Max("pk")
    )
    labels = UnitLabel.objects.filter(unit__layer__run_id=campaign.run_id).aggregate(
        last=Max("updated_at")
    )
    stamp = labels["last"].isoformat() if labels["last"] else "-"
    # created_at too: a campaign id can come back (a test database rolled back, a restore).
    born = campaign.created_at.isoformat()
    key = f"whole-range:{campaign.pk}:{born}:{answers['n']}:{answers['last']}:{stamp}:{reps}"
    cached = cache.get(key)
    if cached is None:
        model = campaign_noise_model(campaign=campaign)
        cached = (
            campaign_unit_measures(campaign=campaign, model=model, reps=reps),
            model,
            campaign_check_results(campaign=campaign),
        )
        cache.set(key, cached, timeout=24 * 3600)
    return cached
