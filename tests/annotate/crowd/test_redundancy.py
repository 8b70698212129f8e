"""Adaptive redundancy: the one-coin posterior, the decision, and the lease engine obeying it."""

import itertools
import math

import pytest

from annotate.crowd import services
from annotate.crowd.models import Assignment, Campaign, Task, Worker
from annotate.crowd.redundancy import (
    NAMING_ALTERNATIVES,
    Vote,
    answer_need,
    label_posterior,
    worker_reliability,
)
from annotate.crowd.services import NoTask
from dissect.models import UnitImage
from tests.annotate.crowd.conftest import build_run
from tests.annotate.crowd.test_concurrency import _run_threads

A = Assignment.Status


def _brute_force_posterior(votes, k):
    """P(label | votes) by enumerating every label of a k-label space (the model's definition)."""
    space = sorted({v.value for v in votes}) + [f"unnamed-{i}" for i in range(k)]
    space = space[:k]
    like = {
        c: math.prod(
            v.reliability if v.value == c else (1 - v.reliability) / (k - 1) for v in votes
        )
        for c in space
    }
    total = sum(like.values())
    return {c: x / total for c, x in like.items()}


@pytest.mark.parametrize(
    "answers",
    [
        [("tree", 0.8), ("tree", 0.8)],
        [("tree", 0.8), ("grass", 0.6)],
        [("tree", 0.9), ("grass", 0.3), ("grass", 0.3)],
        [("sky", 0.7), ("sea", 0.7), ("road", 0.7), ("sky", 0.5)],
    ],
)
def test_posterior_matches_enumeration_over_the_label_space(answers):
    votes = [Vote(worker_id=i, value=v, reliability=r) for i, (v, r) in enumerate(answers)]
    label, confidence = label_posterior(votes, alternatives=7)
    exact = _brute_force_posterior(votes, 7)
    best = max(exact, key=exact.get)
    assert label == best
    assert confidence == pytest.approx(exact[best], rel=1e-9)  # float sums in another order


def test_agreement_is_confident_disagreement_is_not_and_unreliable_workers_weigh_little():
    def conf(*answers):
        votes = [Vote(worker_id=i, value=v, reliability=r) for i, (v, r) in enumerate(answers)]
        return label_posterior(votes, alternatives=NAMING_ALTERNATIVES)

    assert conf(("tree", 0.75), ("tree", 0.75))[1] > 0.95
    assert conf(("tree", 0.75), ("grass", 0.75))[1] < 0.6
    # A careful worker against a spammer: the careful one leads.
    assert conf(("tree", 0.9), ("grass", 0.1))[0] == "tree"
    assert conf()[0] is None


def _campaign(**fields) -> Campaign:
    defaults = {"redundancy": 2, "max_answers": 5, "target_confidence": 0.9}
    return Campaign(**{**defaults, **fields})


def test_the_decision_min_then_stop_when_confident_else_one_more_up_to_max():
    agree = [Vote(i, "tree", 0.75) for i in range(2)]
    split = [Vote(0, "tree", 0.75), Vote(1, "grass", 0.75)]
    adaptive = _campaign()
    assert answer_need(campaign=adaptive, votes=agree[:1], alternatives=20).wanted == 2
    done = answer_need(campaign=adaptive, votes=agree, alternatives=20)
    assert (done.wanted, done.needs_another, done.label) == (2, False, "tree")
    more = answer_need(campaign=adaptive, votes=split, alternatives=20)
    assert (more.wanted, more.needs_another) == (3, True)
    # Five disagreeing answers: the maximum, never more.
    chaos = [Vote(i, f"c{i}", 0.75) for i in range(5)]
    assert answer_need(campaign=adaptive, votes=chaos, alternatives=20).wanted == 5
    # A control-failed answer is spent but casts no vote.
    spent = answer_need(campaign=adaptive, votes=agree[:1], answers=2, alternatives=20)
    assert spent.needs_another
    # Fixed redundancy ignores the confidence.
    fixed = _campaign(redundancy=3, max_answers=None)
    assert answer_need(campaign=fixed, votes=agree, alternatives=20).wanted == 3
    assert answer_need(campaign=fixed, votes=chaos, alternatives=20).wanted == 3


def _controls(task: Task) -> list[int]:
    kinds = dict(UnitImage.objects.filter(pk__in=task.tile_order).values_list("pk", "kind"))
    return [p for p, pk in enumerate(task.tile_order) if kinds[pk] == "control"]


def _answer(worker, campaign, concept):
    """Lease the worker's next task and answer it (`concept`: text, or task -> text)."""
    a = services.assignment_next(worker=worker, campaign=campaign)
    services.assignment_submit(
        assignment=a,
        worker=worker,
        concept=concept(a.task) if callable(concept) else concept,
        category="object",
        flagged_positions=_controls(a.task),
    )
    return a.task


def _live(run, **kwargs):
    campaign = services.campaign_create(run=run, layers=["conv5"], controls_per_task=1, **kwargs)
    return services.campaign_set_status(campaign=campaign, status="live", actor=None)


@pytest.mark.django_db
def test_a_confident_unit_stops_and_a_disputed_one_gets_more_workers():
    run = build_run(units=2, tops=10, controls=1)
    campaign = _live(run, redundancy=2, max_answers=4)
    workers = [Worker.objects.create(pseudonym=f"aw{i}") for i in range(6)]
    first, second = campaign.tasks.order_by("pk")
    # Fill order "complete": the first unit gets its two answers first; they agree.
    assert _answer(workers[0], campaign, "tree") == first
    assert _answer(workers[1], campaign, "Trees") == first  # the same concept, normalised
    first.refresh_from_db()
    assert first.answers_wanted == 2 and first.confidence > 0.9
    # The second unit: workers disagree, so it wants a third answer, then a fourth (the max).
    assert _answer(workers[2], campaign, "car") == second
    assert _answer(workers[3], campaign, "road") == second
    second.refresh_from_db()
    assert second.answers_wanted == 3
    assert _answer(workers[4], campaign, "bus") == second
    assert _answer(workers[5], campaign, "sky") == second
    second.refresh_from_db()
    assert second.answers_wanted == 4
    with pytest.raises(NoTask):
        services.assignment_next(worker=Worker.objects.create(pseudonym="late"), campaign=campaign)
    answered = Assignment.objects.filter(status=A.SUBMITTED)
    assert answered.filter(task=first).count() == 2 and answered.filter(task=second).count() == 4


@pytest.mark.django_db
def test_a_rejected_answer_reopens_its_unit():
    run = build_run(units=1, tops=10, controls=1)
    campaign = _live(run, redundancy=2, max_answers=3)
    workers = [Worker.objects.create(pseudonym=f"rw{i}") for i in range(3)]
    task = _answer(workers[0], campaign, "tree")
    _answer(workers[1], campaign, "tree")
    with pytest.raises(NoTask):
        services.assignment_next(worker=workers[2], campaign=campaign)
    bad = Assignment.objects.filter(worker=workers[1]).get()
    services.assignment_review(assignment_ids=[bad.pk], approve=False, actor=None, reason="spam")
    assert services.assignment_next(worker=workers[2], campaign=campaign).task == task


@pytest.mark.django_db
def test_reliability_follows_agreement_with_other_workers():
    run = build_run(units=3, tops=10, controls=1)
    campaign = _live(run, redundancy=3, fill_order="spread")
    careful = [Worker.objects.create(pseudonym=f"cw{i}") for i in range(2)]
    spammer = Worker.objects.create(pseudonym="spam")
    truth = dict(zip(campaign.tasks.order_by("pk"), ["tree", "sky", "road"], strict=True))
    junk = iter(["zebra", "piano", "cloud"])
    for _unit in range(3):
        for w in careful:
            _answer(w, campaign, truth.get)
        _answer(spammer, campaign, lambda task: next(junk))
    r = worker_reliability(campaign=campaign, worker_ids=[w.pk for w in [*careful, spammer]])
    assert r[careful[0].pk] > 0.8 > 0.5 > r[spammer.pk]


# --- under concurrency (PostgreSQL) ---------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("agreeing", [True, False])
def test_concurrent_workers_never_push_a_unit_past_max_answers(agreeing):
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("concurrency tests need DATABASE_URL to point at PostgreSQL")
    run = build_run(units=5, tops=10, controls=1)
    campaign = _live(run, redundancy=2, max_answers=4)
    workers = [Worker.objects.create(pseudonym=f"pw{i}") for i in range(12)]
    names = itertools.count()

    def work(i):
        while True:
            try:
                a = services.assignment_next(worker=workers[i], campaign=campaign)
            except NoTask:
                return
            concept = "tree" if agreeing else f"thing {next(names)}"
            services.assignment_submit(
                assignment=a,
                worker=workers[i],
                concept=concept,
                category="object",
                flagged_positions=_controls(a.task),
            )

    assert _run_threads(len(workers), work) == []
    counts = {t.pk: t.assignments.filter(status=A.SUBMITTED).count() for t in campaign.tasks.all()}
    assert max(counts.values()) <= 4
    # Agreeing workers: every unit stops at its minimum. Disagreeing: every unit reaches the max.
    if agreeing:
        assert set(counts.values()) == {2}
    else:
        assert set(counts.values()) == {4}
    pairs = list(Assignment.objects.values_list("task_id", "worker_id"))
    assert len(set(pairs)) == len(pairs)
