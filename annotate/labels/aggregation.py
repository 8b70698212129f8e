"""Per-unit aggregation: answers -> UnitLabel (consensus concept and category, precision, agreement,
detector flag), plus the concept services (normalize into Concept rows, researcher merges).

Rules (docs/reports.md repeats them):
- Answers that count: responses of assignments that are submitted or approved (not rejected,
  returned or expired), from every campaign that showed the unit.
- Consensus concept: plurality of normalized concepts. Ties are broken, in order, by the higher
  mean precision of the tied concept's answers, then a vocabulary concept before free text, then
  the earliest answer, then alphabetical order. `details["tie_break"]` says which rule decided.
- Consensus category: plurality of the answers' categories; ties go to the category most used by
  the answers naming the consensus concept, then the vocabulary category of that concept, then the
  paper's order of categories.
- Precision: mean of the answers' precisions. With tile flags (the task's recorded tile order),
  tile_precision is the share of the unit's own tiles (controls excluded) that a majority kept.
- Agreement: share of answers whose normalized concept is the consensus concept.
- Detector: precision >= DETECTOR_PRECISION (0.75) and at least DETECTOR_MIN_AGREEING (2) answers
  name the consensus concept.
"""

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from core.concepts.normalize import normalize_concept
from core.concepts.store import (  # noqa: F401  (re-exported for the labels API)
    CONCEPT_MAX_LENGTH,
    concept_for_text,
    concepts_get_or_create,
    merge_table,
)
from core.concepts.vocabulary import CATEGORY_KEYS, default_vocabulary

Progress = Callable[[int, int], None]


def detector_precision() -> float:
    """The precision a unit needs to count as a detector (settings CROWDDISSECT, default 0.75)."""
    return float(settings.CROWDDISSECT.get("DETECTOR_PRECISION", 0.75))


def detector_min_agreeing() -> int:
    """How many answers must name the consensus concept for a detector (default 2)."""
    return int(settings.CROWDDISSECT.get("DETECTOR_MIN_AGREEING", 2))


@dataclass(frozen=True)
class AnswerInput:
    """One counted answer, already normalized (plain data: the pure consensus needs no database)."""

    response_id: int
    worker: str
    concept: str
    known: bool
    category: str
    precision: float
    shown_tiles: tuple[int, ...] = ()
    flagged_tiles: frozenset[int] = frozenset()


@dataclass(frozen=True)
class Consensus:
    """The aggregate of one unit's answers."""

    concept: str
    category: str
    precision: float
    tile_precision: float | None
    agreement: float
    support: int
    is_detector: bool
    answer_count: int
    details: dict = field(default_factory=dict)


def _concept_order(answers: Sequence[AnswerInput]) -> tuple[list[str], str | None]:
    """Concepts sorted best-first by the tie-break rules, and the rule that split the top two."""
    by_concept: dict[str, list[AnswerInput]] = defaultdict(list)
    for answer in answers:
        by_concept[answer.concept].append(answer)

    def keys(name: str) -> list[tuple[str, object]]:
        group = by_concept[name]
        return [
            ("count", -len(group)),
            ("mean precision", -sum(a.precision for a in group) / len(group)),
            ("vocabulary concept", 0 if group[0].known else 1),
            ("earliest answer", min(a.response_id for a in group)),
            ("alphabetical", name),
        ]

    order = sorted(by_concept, key=lambda n: [v for _, v in keys(n)])
    rule = None
    if len(order) > 1:
        for (name, first), (_, second) in zip(keys(order[0]), keys(order[1]), strict=True):
            if first != second:
                rule = None if name == "count" else name
                break
    return order, rule


def consensus_from_answers(
    answers: Sequence[AnswerInput],
    *,
    min_precision: float,
    min_agreeing: int,
    category_of: Callable[[str], str | None] | None = None,
) -> Consensus | None:
    """Aggregate one unit's answers (see the module docstring); None when there are none."""
    if not answers:
        return None
    order, tie_rule = _concept_order(answers)
    concept = order[0]
    naming = [a for a in answers if a.concept == concept]
    support = len(naming)

    category_counts = Counter(a.category for a in answers)
    naming_counts = Counter(a.category for a in naming)
    paper_order = {c: i for i, c in enumerate(CATEGORY_KEYS)}
    vocabulary_category = category_of(concept) if category_of else None
    category = min(
        category_counts,
        key=lambda c: (
            -category_counts[c],
            -naming_counts.get(c, 0),
            0 if c == vocabulary_category else 1,
            paper_order.get(c, len(paper_order)),
        ),
    )
    precision = sum(a.precision for a in answers) / len(answers)
    tile_precision = _tile_precision(answers)
    agreement = support / len(answers)
    is_detector = precision >= min_precision and support >= min_agreeing
    details = {
        "votes": dict(Counter(a.concept for a in answers).most_common()),
        "category_votes": dict(category_counts.most_common()),
        "support": support,
        "tie_break": tie_rule,
        "rule": {"min_precision": min_precision, "min_agreeing": min_agreeing},
    }
    return Consensus(
        concept=concept,
        category=category,
        precision=precision,
        tile_precision=tile_precision,
        agreement=agreement,
        support=support,
        is_detector=is_detector,
        answer_count=len(answers),
        details=details,
    )


def _tile_precision(answers: Sequence[AnswerInput]) -> float | None:
    """Share of the unit's tiles kept by a strict majority of the answers that were shown them."""
    shown: Counter = Counter()
    flagged: Counter = Counter()
    for answer in answers:
        for tile in answer.shown_tiles:
            shown[tile] += 1
            if tile in answer.flagged_tiles:
                flagged[tile] += 1
    if not shown:
        return None
    kept = sum(1 for tile, n in shown.items() if (n - flagged[tile]) * 2 > n)
    return kept / len(shown)


# --- Concepts ---------------------------------------------------------------------------------


@transaction.atomic
def concept_merge(*, source, target, actor=None) -> list[int]:
    """Merge concept `source` into `target` (both Concept rows); returns the affected unit ids.

    The merge is stored on the source (merged_into) and applied everywhere concepts are read;
    labels of the units whose answers mention the source are recomputed at once.
    """
    from annotate.crowd.models import Answer
    from core.audit import audit_record
    from core.models import AuditAction, Concept

    if source.pk == target.pk:
        raise ValueError(f"concept {source.name!r}: cannot merge a concept into itself")
    final = target
    seen = {source.pk}
    while final.merged_into_id is not None:
        if final.pk in seen:
            break
        seen.add(final.pk)
        final = final.merged_into
    if final.pk == source.pk:
        raise ValueError(
            f"concept {target.name!r} is already merged into {source.name!r}: that would be a cycle"
        )
    Concept.objects.filter(pk=source.pk).update(merged_into=final)
    # Earlier merges into the source follow it to the new target.
    Concept.objects.filter(merged_into=source).update(merged_into=final)
    audit_record(
        actor=actor,
        action=AuditAction.CONCEPT_MERGE,
        target=source,
        data={"from": source.name, "into": final.name},
    )
    merged_names = {source.name} | set(
        Concept.objects.filter(merged_into=final).values_list("name", flat=True)
    )
    unit_ids = sorted(
        set(
            Answer.objects.filter(concept__name__in=merged_names).values_list(
                "assignment__task__unit_id", flat=True
            )
        )
    )
    unit_labels_recompute(unit_ids=unit_ids)
    return unit_ids


@transaction.atomic
def concept_unmerge(*, concept, actor=None) -> list[int]:
    """Undo a merge: the concept stands on its own again; affected labels are recomputed."""
    from annotate.crowd.models import Answer
    from core.audit import audit_record
    from core.models import AuditAction

    if concept.merged_into_id is None:
        return []
    previous = concept.merged_into.name
    concept.merged_into = None
    concept.save(update_fields=["merged_into"])
    audit_record(
        actor=actor, action=AuditAction.CONCEPT_UNMERGE, target=concept, data={"from": previous}
    )
    unit_ids = sorted(
        set(
            Answer.objects.filter(concept=concept).values_list(
                "assignment__task__unit_id", flat=True
            )
        )
    )
    unit_labels_recompute(unit_ids=unit_ids)
    return unit_ids


# --- Unit labels ------------------------------------------------------------------------------


def counted_statuses() -> tuple[str, ...]:
    """Assignment statuses whose answers count."""
    from annotate.crowd.models import Assignment

    return (Assignment.Status.SUBMITTED, Assignment.Status.APPROVED)


def answers_for_units(
    *, unit_ids: Iterable[int], merges: dict[str, str] | None = None
) -> dict[int, list[AnswerInput]]:
    """The counted answers of `unit_ids`, normalized, grouped by unit id."""
    from annotate.crowd.models import Answer
    from dissect.models import UnitImage

    merges = merge_table() if merges is None else merges
    vocabulary = default_vocabulary()
    rows = list(
        Answer.objects.filter(
            assignment__task__unit_id__in=list(unit_ids),
            assignment__status__in=counted_statuses(),
        )
        .order_by("id")
        .values_list(
            "id",
            "assignment__task__unit_id",
            "assignment__worker__pseudonym",
            "concept__name",
            "concept_text",
            "category",
            "precision",
            "flagged_tiles",
            "assignment__task__tile_order",
        )
    )
    tile_ids = {t for row in rows for t in (row[8] or [])}
    controls = set()
    if tile_ids:
        controls = set(
            UnitImage.objects.filter(id__in=tile_ids, kind=UnitImage.Kind.CONTROL).values_list(
                "id", flat=True
            )
        )
    cache: dict[str, tuple[str, bool]] = {}
    grouped: dict[int, list[AnswerInput]] = defaultdict(list)
    for rid, unit_id, worker, concept_name, text, category, precision, flagged, order in rows:
        source = concept_name or text or ""
        if source not in cache:
            normalized = normalize_concept(source, vocabulary=vocabulary, merges=merges)
            cache[source] = (normalized.name[:CONCEPT_MAX_LENGTH], normalized.known)
        name, known = cache[source]
        grouped[unit_id].append(
            AnswerInput(
                response_id=rid,
                worker=worker,
                concept=name,
                known=known,
                category=category,
                precision=float(precision),
                shown_tiles=tuple(t for t in (order or []) if t not in controls),
                flagged_tiles=frozenset(flagged or []),
            )
        )
    return grouped


_LABEL_FIELDS = [
    "concept_text",
    "concept",
    "category",
    "precision",
    "tile_precision",
    "agreement",
    "is_detector",
    "answer_count",
    "method",
    "details",
]


def unit_labels_recompute(
    *, unit_ids: Sequence[int], progress: Progress | None = None, batch_size: int = 2000
) -> int:
    """Recompute the crowd UnitLabel of each unit in `unit_ids`; returns how many labels exist after.

    Idempotent: the same answers give the same labels. Units without counted answers lose their
    crowd label. Works in batches so a whole run costs a few queries per batch.
    """
    from annotate.labels.models import UnitLabel

    merges = merge_table()
    vocabulary = default_vocabulary()
    min_precision, min_agreeing = detector_precision(), detector_min_agreeing()
    now = timezone.now()

    def category_of(name: str) -> str | None:
        entry = vocabulary.lookup_key(name)
        return entry.category if entry else None

    unit_ids = list(dict.fromkeys(unit_ids))
    written = 0
    for start in range(0, len(unit_ids), batch_size):
        batch = unit_ids[start : start + batch_size]
        grouped = answers_for_units(unit_ids=batch, merges=merges)
        results = {}
        for unit_id in batch:
            consensus = consensus_from_answers(
                grouped.get(unit_id, []),
                min_precision=min_precision,
                min_agreeing=min_agreeing,
                category_of=category_of,
            )
            if consensus is not None:
                results[unit_id] = consensus
        concepts = concepts_get_or_create(
            names={c.concept: None for c in results.values() if c.concept}
        )
        _link_answers_to_concepts(unit_ids=batch, vocabulary=vocabulary)
        with transaction.atomic():
            UnitLabel.objects.filter(
                unit_id__in=[u for u in batch if u not in results], source=UnitLabel.Source.CROWD
            ).delete()
            labels = [
                UnitLabel(
                    unit_id=unit_id,
                    source=UnitLabel.Source.CROWD,
                    concept_text=c.concept,
                    concept=concepts.get(c.concept),
                    category=c.category,
                    precision=c.precision,
                    tile_precision=c.tile_precision,
                    agreement=c.agreement,
                    is_detector=c.is_detector,
                    answer_count=c.answer_count,
                    method="plurality",
                    details=c.details,
                    updated_at=now,
                )
                for unit_id, c in results.items()
            ]
            UnitLabel.objects.bulk_create(
                labels,
                update_conflicts=True,
                unique_fields=["unit", "source"],
                update_fields=_LABEL_FIELDS + ["updated_at"],
            )
        written += len(results)
        if progress:
            progress(min(start + batch_size, len(unit_ids)), len(unit_ids))
    return written


def _link_answers_to_concepts(*, unit_ids: Sequence[int], vocabulary) -> None:
    """Point answers without a Concept (imported or older ones) at their normalized concept, so
    every concept shows up (and can be merged) on the concepts page."""
    from annotate.crowd.models import Answer

    rows = Answer.objects.filter(
        assignment__task__unit_id__in=list(unit_ids), concept__isnull=True
    ).values_list("id", "concept_text")
    by_name: dict[str, list[int]] = defaultdict(list)
    categories: dict[str, str | None] = {}
    for rid, text in rows:
        normalized = normalize_concept(text or "", vocabulary=vocabulary, merges={})
        name = normalized.name[:CONCEPT_MAX_LENGTH]
        if name:
            by_name[name].append(rid)
            categories.setdefault(name, normalized.category)
    if not by_name:
        return
    concepts = concepts_get_or_create(names=categories)
    for name, ids in by_name.items():
        Answer.objects.filter(id__in=ids).update(concept=concepts[name])


def unit_label_recompute(*, unit_id: int):
    """Recompute one unit's crowd label (cheap: two or three queries); returns it or None."""
    from annotate.labels.models import UnitLabel

    unit_labels_recompute(unit_ids=[unit_id])
    return UnitLabel.objects.filter(unit_id=unit_id, source=UnitLabel.Source.CROWD).first()


def run_labels_recompute(
    *, run_id: int, progress: Progress | None = None, crowd_model: str | None = "one_coin_ds"
) -> int:
    """Recompute the crowd labels of every unit of a dissection run, then (unless `crowd_model` is
    None) fit the crowd model over the whole run and store its verdicts (`run_crowd_model_apply`)."""
    from dissect.models import Unit

    unit_ids = list(Unit.objects.filter(layer__run_id=run_id).values_list("id", flat=True))
    written = unit_labels_recompute(unit_ids=unit_ids, progress=progress)
    if crowd_model and written:
        run_crowd_model_apply(run_id=run_id, method=crowd_model)
    return written


def run_crowd_model_apply(*, run_id: int, method: str = "one_coin_ds") -> int:
    """Fit a crowd model (crowd_models.METHODS) on all counted answers of a run and store, per
    UnitLabel, details["model"] = {method, category, confidence, tile_precision}: the model's
    category, its posterior, and the share of the unit's tiles the tile-flag model keeps.

    A model is fitted on the whole run (worker skills need many units), so it runs on demand and
    after imports, not on every submission; the plurality fields stay the label of record."""
    from annotate.labels.crowd_models import aggregate, tile_flag_answers
    from annotate.labels.models import UnitLabel
    from dissect.models import Unit

    unit_ids = list(Unit.objects.filter(layer__run_id=run_id).values_list("id", flat=True))
    grouped = answers_for_units(unit_ids=unit_ids)
    category_answers = [
        (unit, a.worker, a.category) for unit, answers in grouped.items() for a in answers
    ]
    categories = aggregate(answers=category_answers, method=method)
    flag_inputs = [
        (unit, a.worker, a.shown_tiles, a.flagged_tiles)
        for unit, answers in grouped.items()
        for a in answers
        if a.shown_tiles
    ]
    kept: dict[int, list[bool]] = defaultdict(list)
    if flag_inputs:
        flags = aggregate(answers=tile_flag_answers(flag_inputs), method=method)
        for (unit, _tile), label in flags.labels.items():
            kept[unit].append(label == "kept")
    labels = list(UnitLabel.objects.filter(unit_id__in=unit_ids, source=UnitLabel.Source.CROWD))
    for label in labels:
        label.details = {
            **label.details,
            "model": {
                "method": method,
                "category": categories.labels.get(label.unit_id),
                "confidence": categories.confidence.get(label.unit_id),
                "tile_precision": (
                    sum(kept[label.unit_id]) / len(kept[label.unit_id])
                    if kept.get(label.unit_id)
                    else None
                ),
            },
        }
    UnitLabel.objects.bulk_update(labels, ["details"], batch_size=1000)
    return len(labels)
