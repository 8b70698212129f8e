"""Adaptive redundancy: does a unit need another answer?

A campaign with ``max_answers`` above its ``redundancy`` stops giving a unit to workers once its
aggregated label is confident (posterior >= ``target_confidence``) after ``redundancy`` answers,
and hands it out one more time whenever the answers so far disagree, never beyond
``max_answers``. A campaign without ``max_answers`` asks exactly ``redundancy`` answers per unit.

The confidence is computed here, in the crowd layer (it never asks ``annotate.labels``): the
posterior of the leading answer under a *one-coin* noise model (one-coin Dawid–Skene with known
worker reliabilities and a uniform prior). A worker of reliability r names the unit's true label
with probability r and otherwise any one of the other ``alternatives - 1`` labels alike. For
naming tasks the answers are the workers' normalised concepts (``core.concepts`` through
``annotate.crowd.concepts``), and a worker's reliability is their smoothed agreement with the
other workers on the other units they answered (and with gold answers), so spammers weigh little.
Verification answers (yes / no / can't tell per image) use the same decision with
``alternatives=2`` and their own reliabilities.

``answer_need`` is the one decision, for every task type; ``task_answer_need`` feeds it a naming
task's answers. ``Task.answers_wanted`` stores its outcome: leases are handed out only while a
task holds fewer slots (answers plus live leases) than that, so concurrent workers never push a
unit past ``max_answers`` (the lease path recounts under the task's row lock).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from annotate.crowd.concepts import concept_key, concept_keyer, concept_merges
from annotate.crowd.models import Answer, Assignment, Campaign, Task

A = Assignment.Status
COUNTED = (A.SUBMITTED, A.APPROVED)

# Labels a careful namer's wrong answer spreads over. The vocabulary has hundreds of concepts,
# but real mistakes gather on a few near ones ("grass" for "field"); 20 keeps the model from
# trusting two agreeing answers more than such correlated mistakes allow.
NAMING_ALTERNATIVES = 20
# Beta prior of a worker's reliability, as pseudo-answers (mean 0.75): a new worker counts as
# fairly careful until their answers say otherwise.
PRIOR_AGREEING, PRIOR_DISAGREEING = 3.0, 1.0
# Reliabilities are kept inside these bounds: nobody is certain, and at chance an answer is noise.
RELIABILITY_MIN, RELIABILITY_MAX = 0.05, 0.95


@dataclass(frozen=True)
class Vote:
    """One counted answer as the noise model sees it: its value (a normalised concept, or
    "yes"/"no") and the probability that its worker answers right."""

    worker_id: int
    value: str
    reliability: float


@dataclass(frozen=True)
class AnswerNeed:
    """The decision for one unit: its leading label and posterior, the counted answers, and the
    slots it should hold now (``wanted``; more answers are asked while ``answers < wanted``)."""

    label: str | None
    confidence: float
    answers: int
    wanted: int

    @property
    def needs_another(self) -> bool:
        return self.answers < self.wanted


def label_posterior(votes: Sequence[Vote], *, alternatives: int) -> tuple[str | None, float]:
    """(leading value, its posterior) under the one-coin model with a uniform prior over
    ``alternatives`` labels; (None, 1/alternatives) without votes. Ties go to the value first in
    alphabetical order (a tie is never confident anyway)."""
    named = sorted({v.value for v in votes})
    k = max(int(alternatives), len(named) + 1, 2)
    if not votes:
        return None, 1.0 / k
    # log L(c) = sum over votes of log r (vote names c) or log((1 - r) / (k - 1)) (it does not).
    miss = [math.log((1 - _bounded(v.reliability)) / (k - 1)) for v in votes]
    hit = [math.log(_bounded(v.reliability)) for v in votes]
    base = sum(miss)  # the likelihood of any label nobody named
    log_like = {
        c: base + sum(h - m for v, h, m in zip(votes, hit, miss, strict=True) if v.value == c)
        for c in named
    }
    top = min(named, key=lambda c: (-log_like[c], c))
    peak = max(log_like[top], base)
    total = sum(math.exp(x - peak) for x in log_like.values())
    total += (k - len(named)) * math.exp(base - peak)
    return top, math.exp(log_like[top] - peak) / total


def answer_need(
    *, campaign: Campaign, votes: Sequence[Vote], answers: int | None = None, alternatives: int
) -> AnswerNeed:
    """Does this unit need another answer? The one rule for every task type.

    ``votes`` are the unit's counted answers that carry a value (an answer that failed its
    controls counts as spent but casts no vote); ``answers`` is how many counted answers the unit
    has (default: ``len(votes)``). Fixed redundancy (no ``max_answers``): ``redundancy`` slots.
    Adaptive: ``redundancy`` slots until that many answers are in; then none more when the
    leading label's posterior reaches ``target_confidence``, else one more, at most
    ``max_answers``."""
    answers = len(votes) if answers is None else int(answers)
    label, confidence = label_posterior(votes, alternatives=alternatives)
    minimum, maximum = campaign.redundancy, campaign.answers_max
    if not campaign.is_adaptive or answers < minimum:
        wanted = minimum
    elif confidence >= campaign.target_confidence:
        wanted = answers
    else:
        wanted = min(maximum, answers + 1)
    return AnswerNeed(label=label, confidence=confidence, answers=answers, wanted=max(1, wanted))


def worker_reliability(
    *, campaign: Campaign, worker_ids: Sequence[int], exclude_task_id: int | None = None
) -> dict[int, float]:
    """Each worker's probability of naming a unit right in ``campaign``: their agreements, with
    the Beta(3, 1) prior, over their counted answers on other units. An answer agrees when its
    normalised concept is the gold concept (gold units) or among the most named by the other
    workers of that unit; one that failed its controls counts as a disagreement. The unit
    ``exclude_task_id`` is left out, so a unit's own answers do not vouch for themselves."""
    key = concept_keyer()

    own = list(
        Answer.objects.filter(
            assignment__task__campaign=campaign,
            assignment__worker_id__in=list(worker_ids),
            assignment__status__in=COUNTED,
        )
        .exclude(assignment__task_id=exclude_task_id)
        .values_list(
            "assignment__worker_id",
            "assignment__task_id",
            "concept_text",
            "control_failed",
            "assignment__task__is_gold",
            "assignment__task__gold_concept",
        )
    )
    peers: dict[int, list[tuple[int, str]]] = defaultdict(list)
    for worker_id, task_id, text in Answer.objects.filter(
        assignment__task_id__in={row[1] for row in own}, assignment__status__in=COUNTED
    ).values_list("assignment__worker_id", "assignment__task_id", "concept_text"):
        peers[task_id].append((worker_id, key(text)))
    judged = [
        (worker_id, task_id, key(text), control_failed, key(gold) if is_gold else None)
        for worker_id, task_id, text, control_failed, is_gold, gold in own
    ]
    return agreement_reliability(answers=judged, peers=peers, worker_ids=worker_ids)


def agreement_reliability(
    *,
    answers: Iterable[tuple[int, int, str, bool, str | None]],
    peers: Mapping[int, Sequence[tuple[int, str]]],
    worker_ids: Sequence[int],
) -> dict[int, float]:
    """The reliability rule itself, over plain values (``worker_reliability`` reads them from
    the database; the simulated crowd's in-memory replica passes its own). ``answers``: each
    judged answer as (worker, task, concept key, control failed, gold concept key or None);
    ``peers``: task -> every counted (worker, concept key) of that task."""
    agreeing: Counter = Counter()
    judged: Counter = Counter()
    for worker_id, task_id, mine, control_failed, gold in answers:
        if gold is not None:
            hit = mine == gold
        else:
            others = Counter(k for w, k in peers.get(task_id, ()) if w != worker_id)
            if not others:
                continue
            most = max(others.values())
            hit = others[mine] == most
        hit = hit and not control_failed
        judged[worker_id] += 1
        agreeing[worker_id] += hit
    return {
        w: _bounded(
            (agreeing[w] + PRIOR_AGREEING) / (judged[w] + PRIOR_AGREEING + PRIOR_DISAGREEING)
        )
        for w in worker_ids
    }


def task_answer_need(*, task: Task) -> AnswerNeed:
    """``answer_need`` of a naming task from its counted answers (gold tasks: always one more)."""
    campaign = task.campaign
    rows = list(
        Answer.objects.filter(assignment__task=task, assignment__status__in=COUNTED).values_list(
            "assignment__worker_id", "concept_text", "control_failed"
        )
    )
    reliability = worker_reliability(
        campaign=campaign, worker_ids=sorted({w for w, _, _ in rows}), exclude_task_id=task.pk
    )
    merges = concept_merges()
    votes = [
        Vote(worker_id=w, value=concept_key(text, merges=merges), reliability=reliability[w])
        for w, text, control_failed in rows
        if not control_failed
    ]
    need = answer_need(
        campaign=campaign, votes=votes, answers=len(rows), alternatives=NAMING_ALTERNATIVES
    )
    if task.is_gold:  # every worker may be scored on gold: no cap
        return AnswerNeed(need.label, need.confidence, need.answers, need.answers + 1)
    return need


def _bounded(reliability: float) -> float:
    return min(RELIABILITY_MAX, max(RELIABILITY_MIN, float(reliability)))
