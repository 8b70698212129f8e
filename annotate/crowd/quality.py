"""Worker quality: gold accuracy, control pass rate, median time, agreement with the consensus label.

Gold score of one answer: half for the concept (normalized names equal), half for the category.
Agreement: share of a worker's answers whose normalized concept equals the unit's crowd label
(the crowd label the layer above computes, asked for through ``signals.consensus_requested``)
among units that have one.
"""

from collections import defaultdict
from dataclasses import dataclass
from statistics import median

from annotate.crowd.concepts import concept_key, concept_merges
from annotate.crowd.models import Answer, Assignment, Campaign, Worker
from annotate.crowd.signals import consensus_requested

A = Assignment.Status
ANSWERED = (A.SUBMITTED, A.APPROVED, A.REJECTED)


def gold_score(
    *,
    concept_text: str,
    category: str,
    gold_concept: str,
    gold_category: str,
    merges: dict[str, str] | None = None,
) -> float:
    """0, 0.5 or 1: half for the concept (normalized, after researcher merges), half for the category."""
    concept_ok = concept_key(concept_text, merges=merges) == concept_key(
        gold_concept, merges=merges
    )
    return 0.5 * concept_ok + 0.5 * (category == gold_category)


def gold_accuracy(*, worker: Worker, campaign: Campaign) -> tuple[float | None, int]:
    """(mean gold score, gold answers) of the worker in `campaign`; (None, 0) without gold answers."""
    rows = Answer.objects.filter(
        assignment__worker=worker,
        assignment__task__campaign=campaign,
        assignment__task__is_gold=True,
        assignment__status__in=ANSWERED,
    ).values_list(
        "concept_text",
        "category",
        "assignment__task__gold_concept",
        "assignment__task__gold_category",
    )
    rows = list(rows)
    merges = concept_merges() if rows else {}
    scores = [
        gold_score(concept_text=c, category=k, gold_concept=gc, gold_category=gk, merges=merges)
        for c, k, gc, gk in rows
    ]
    return (sum(scores) / len(scores) if scores else None), len(scores)


@dataclass
class WorkerQuality:
    """One row of a campaign's worker table."""

    worker_id: int
    pseudonym: str
    source: str
    blocked: bool
    answers: int = 0
    approved: int = 0
    rejected: int = 0
    gold_answers: int = 0
    gold_accuracy: float | None = None
    control_pass_rate: float | None = None
    median_seconds: float | None = None
    agreement_answers: int = 0
    agreement: float | None = None


def campaign_worker_table(*, campaign: Campaign) -> list[WorkerQuality]:
    """Quality of every worker who answered in `campaign`, most answers first."""
    rows = Answer.objects.filter(
        assignment__task__campaign=campaign, assignment__status__in=ANSWERED
    ).values_list(
        "assignment__worker_id",
        "assignment__status",
        "assignment__active_seconds",
        "concept_text",
        "category",
        "control_failed",
        "assignment__task__is_gold",
        "assignment__task__gold_concept",
        "assignment__task__gold_category",
        "assignment__task__unit_id",
    )
    rows = list(rows)
    consensus: dict[int, str] = {}
    for _receiver, answer in consensus_requested.send(
        sender=Campaign, unit_ids={r[9] for r in rows}
    ):
        consensus.update(answer or {})
    merges = concept_merges()
    consensus = {unit: concept_key(text, merges=merges) for unit, text in consensus.items()}
    per_worker: dict[int, list] = defaultdict(list)
    for row in rows:
        per_worker[row[0]].append(row)
    workers = Worker.objects.in_bulk(list(per_worker))
    table = []
    for worker_id, answers in per_worker.items():
        w = workers[worker_id]
        q = WorkerQuality(worker_id=w.pk, pseudonym=w.pseudonym, source=w.source, blocked=w.blocked)
        q.answers = len(answers)
        q.approved = sum(1 for r in answers if r[1] == A.APPROVED)
        q.rejected = sum(1 for r in answers if r[1] == A.REJECTED)
        gold = [
            gold_score(
                concept_text=r[3],
                category=r[4],
                gold_concept=r[7],
                gold_category=r[8],
                merges=merges,
            )
            for r in answers
            if r[6]
        ]
        q.gold_answers = len(gold)
        q.gold_accuracy = sum(gold) / len(gold) if gold else None
        q.control_pass_rate = sum(1 for r in answers if not r[5]) / len(answers)
        times = [r[2] for r in answers if r[2] is not None]
        q.median_seconds = median(times) if times else None
        agree = [
            concept_key(r[3], merges=merges) == consensus[r[9]]
            for r in answers
            if r[9] in consensus
        ]
        q.agreement_answers = len(agree)
        q.agreement = sum(agree) / len(agree) if agree else None
        table.append(q)
    return sorted(table, key=lambda q: (-q.answers, q.pseudonym))
