"""Campaigns, the assignment engine, answers, review and quality, against the database."""

from datetime import timedelta

import pytest
from django.utils import timezone

from annotate.crowd import quality, services
from annotate.crowd.models import Assignment, Task, Worker
from annotate.crowd.services import AnswerInvalid, CrowdError, LeaseExpired, NoTask
from annotate.labels.models import UnitLabel
from core.models import AuditEvent
from dissect.models import AutoLabel, DissectionRun, UnitImage
from tests.annotate.crowd.conftest import build_run

A = Assignment.Status
pytestmark = pytest.mark.django_db


def _worker(name: str) -> Worker:
    return Worker.objects.create(pseudonym=name)


def _live(run, **kwargs):
    campaign = services.campaign_create(run=run, layers=["conv5"], **kwargs)
    return services.campaign_set_status(campaign=campaign, status="live", actor=None)


def _controls(task: Task) -> list[int]:
    kinds = dict(UnitImage.objects.filter(pk__in=task.tile_order).values_list("pk", "kind"))
    return [p for p, pk in enumerate(task.tile_order) if kinds[pk] == "control"]


def _submit(a, worker, *, flagged=None, concept="tree", category="object", **kw):
    flagged = _controls(a.task) if flagged is None else flagged
    return services.assignment_submit(
        assignment=a,
        worker=worker,
        concept=concept,
        category=category,
        flagged_positions=flagged,
        **kw,
    )


def test_campaign_tasks_mix_top_tiles_and_controls_in_a_seeded_recorded_order(crowd_run):
    campaign = services.campaign_create(
        run=crowd_run, layers=["conv5"], tiles_per_task=13, controls_per_task=3, seed=7
    )
    tasks = list(campaign.tasks.order_by("unit__index"))
    assert len(tasks) == 3
    for task in tasks:
        images = UnitImage.objects.filter(pk__in=task.tile_order)
        kinds = sorted(images.values_list("kind", flat=True))
        assert kinds.count("control") == 3 and kinds.count("top") == 10
        top_ranks = sorted(images.filter(kind="top").values_list("rank", flat=True))
        assert top_ranks == list(range(10))  # the unit's best tiles
        assert task.tile_order != sorted(task.tile_order)
    again = services.campaign_create(
        run=crowd_run, layers=["conv5"], tiles_per_task=13, controls_per_task=3, seed=7
    )
    assert [h.tile_order for h in again.tasks.order_by("unit__index")] == [
        h.tile_order for h in tasks
    ]
    other = services.campaign_create(run=crowd_run, layers=["conv5"], seed=8)
    assert [h.tile_order for h in other.tasks.order_by("unit__index")] != [
        h.tile_order for h in tasks
    ]
    assert AuditEvent.objects.filter(action="campaign.create", target_id=str(campaign.pk)).exists()


def test_campaign_refuses_unfinished_runs_unknown_layers_and_thin_units(db):
    run = build_run(units=1, tops=8)
    with pytest.raises(CrowdError, match="10 rendered tiles"):
        services.campaign_create(run=run, layers=["conv5"])
    with pytest.raises(CrowdError, match="choose from conv5"):
        services.campaign_create(run=run, layers=["fc9"])
    run.status = DissectionRun.Status.RUNNING
    run.save()
    with pytest.raises(CrowdError, match="finished"):
        services.campaign_create(run=run, layers=["conv5"])


def test_status_moves_draft_live_paused_finished_only(crowd_run):
    campaign = services.campaign_create(run=crowd_run, layers=["conv5"])
    with pytest.raises(CrowdError, match="draft campaign can move to"):
        services.campaign_set_status(campaign=campaign, status="paused", actor=None)
    for status in ("live", "paused", "live", "finished"):
        campaign = services.campaign_set_status(campaign=campaign, status=status, actor=None)
    assert campaign.status == "finished"
    assert AuditEvent.objects.filter(action="campaign.status").count() == 4


def _fill_order(campaign, order: str):
    campaign.fill_order = order
    campaign.save(update_fields=["fill_order"])
    return campaign


def test_fill_order_complete_is_the_default_and_finishes_units_before_opening_new_ones():
    """Redundancy 3: the first unit gets all 3 answers before the second opens, and so on."""
    run = build_run(units=4)
    campaign = _live(run, redundancy=3)
    assert campaign.fill_order == "complete"
    workers = [_worker(f"c{i}") for i in range(6)]
    answered_units = []
    for w in workers:  # six workers one after another: two units finished, none half done
        a = services.assignment_next(worker=w, campaign=campaign)
        answered_units.append(a.task.unit.index)
        _submit(a, w)
    assert answered_units == [0, 0, 0, 1, 1, 1]
    # Leases count too: two workers at once share the unit nearest its redundancy.
    a1 = services.assignment_next(worker=workers[0], campaign=campaign)
    a2 = services.assignment_next(worker=workers[1], campaign=campaign)
    assert a1.task_id == a2.task_id and a1.task.unit.index == 2
    # Finished units have labels early: units 0 and 1 each have 3 answers.
    counts = {
        t.unit.index: t.assignments.filter(status__in=[A.SUBMITTED, A.APPROVED]).count()
        for t in campaign.tasks.select_related("unit")
    }
    assert counts == {0: 3, 1: 3, 2: 0, 3: 0}


def test_a_campaign_refuses_units_without_their_controls_unless_told_to():
    """Controls are never dropped silently: a unit with fewer rendered controls than the campaign
    asks for stops the campaign with the numbers, unless allow_fewer_controls is set."""
    run = build_run(units=3, tops=12, controls=1)
    with pytest.raises(CrowdError) as refused:
        services.campaign_create(run=run, layers=["conv5"], controls_per_task=3)
    message = str(refused.value)
    assert refused.value.field == "controls_per_task"
    assert "3 of 3 units have fewer than 3 rendered control tiles" in message
    assert "Lower controls_per_task to 1" in message and "allow_fewer_controls" in message
    campaign = services.campaign_create(
        run=run, layers=["conv5"], controls_per_task=3, allow_fewer_controls=True
    )
    assert campaign.tasks.count() == 3
    assert services.campaign_create(run=run, layers=["conv5"], controls_per_task=1, seed=1)


def test_fill_order_spread_gives_every_unit_a_first_answer_first():
    run = build_run(units=4)
    with pytest.raises(CrowdError, match="fill_order: give one of complete, spread"):
        services.campaign_create(run=run, layers=["conv5"], fill_order="random")
    campaign = _live(run, redundancy=3, fill_order="spread")
    assert campaign.fill_order == "spread"
    workers = [_worker(f"s{i}") for i in range(4)]
    units = []
    for w in workers:
        a = services.assignment_next(worker=w, campaign=campaign)
        units.append(a.task.unit.index)
        _submit(a, w)
    assert sorted(units) == [0, 1, 2, 3]


def test_redundancy_fewest_answers_first_and_never_the_same_unit_twice(crowd_run):
    campaign = _fill_order(_live(crowd_run, redundancy=2), "spread")
    workers = [_worker(f"w{i}") for i in range(4)]
    first = [services.assignment_next(worker=w, campaign=campaign) for w in workers[:3]]
    # Three workers, three units: the least-answered units go first, so all three differ.
    assert len({a.task_id for a in first}) == 3
    seen = {first[0].task_id}
    _submit(first[0], workers[0])
    while True:
        try:
            a = services.assignment_next(worker=workers[0], campaign=campaign)
        except NoTask:
            break
        assert a.task_id not in seen
        seen.add(a.task_id)
        _submit(a, workers[0])
    assert len(seen) == 3
    # Every task now has 2 slots taken except... count answered-or-leased per task never exceeds 2.
    services.assignment_next(worker=workers[3], campaign=campaign)
    for task in campaign.tasks.all():
        taken = task.assignments.filter(status__in=[A.LEASED, A.SUBMITTED, A.APPROVED]).count()
        assert taken <= 2
    with pytest.raises(NoTask):
        for w in workers[1:]:
            for _ in range(5):
                a = services.assignment_next(worker=w, campaign=campaign)
                _submit(a, w)


def test_a_worker_holds_one_lease_at_a_time(crowd_run):
    campaign = _live(crowd_run)
    w = _worker("solo")
    a = services.assignment_next(worker=w, campaign=campaign)
    assert services.assignment_next(worker=w, campaign=campaign).pk == a.pk


def test_expired_lease_returns_the_task_to_the_pool(crowd_run):
    campaign = _live(crowd_run, redundancy=1)
    w1, w2 = _worker("a"), _worker("b")
    held = [services.assignment_next(worker=w1, campaign=campaign)]
    for _ in range(2):
        services.assignment_return(assignment=held[-1], worker=w1)
        held.append(services.assignment_next(worker=w1, campaign=campaign))
    # w1 returned two tasks and holds the third; w2 gets the returned ones, never the held one.
    got = services.assignment_next(worker=w2, campaign=campaign)
    assert got.task_id != held[-1].task_id
    services.assignment_submit(
        assignment=got,
        worker=w2,
        concept="x",
        category="object",
        flagged_positions=_controls(got.task),
    )
    a = services.assignment_next(worker=w2, campaign=campaign)
    _submit(a, w2)
    with pytest.raises(NoTask):
        services.assignment_next(worker=w2, campaign=campaign)
    Assignment.objects.filter(pk=held[-1].pk).update(
        lease_expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert services.assignment_next(worker=w2, campaign=campaign).task_id == held[-1].task_id
    with pytest.raises(LeaseExpired):
        _submit(held[-1], w1)
    assert services.leases_expire() == 1
    assert Assignment.objects.get(pk=held[-1].pk).status == A.EXPIRED
    assert services.leases_expire() == 0


def test_blocked_paused_and_capped_workers_get_nothing(crowd_run):
    campaign = _live(crowd_run, max_tasks_per_worker=1)
    w = _worker("b")
    a = services.assignment_next(worker=w, campaign=campaign)
    _submit(a, w)
    with pytest.raises(NoTask, match="limit of 1"):
        services.assignment_next(worker=w, campaign=campaign)
    other = _worker("o")
    lease = services.assignment_next(worker=other, campaign=campaign)
    services.worker_block(worker=other, actor=None, reason="spam answers")
    assert Assignment.objects.get(pk=lease.pk).status == A.EXPIRED
    with pytest.raises(NoTask, match="blocked.*spam answers"):
        services.assignment_next(worker=other, campaign=campaign)
    services.worker_unblock(worker=other, actor=None)
    services.campaign_set_status(campaign=campaign, status="paused", actor=None)
    campaign.refresh_from_db()
    with pytest.raises(NoTask, match="paused"):
        services.assignment_next(worker=other, campaign=campaign)
    actions = set(AuditEvent.objects.values_list("action", flat=True))
    assert {"worker.block", "worker.unblock", "assignment.lease", "assignment.submit"} <= actions


def test_answer_validation_names_the_field(crowd_run):
    campaign = _live(crowd_run)
    w = _worker("v")
    a = services.assignment_next(worker=w, campaign=campaign)
    cases = [
        ({"concept": ""}, "concept", "type the one or two words"),
        ({"concept": "x" * 41}, "concept", "at most 40"),
        ({"concept": "<b>tree</b>"}, "concept", "only letters"),
        ({"category": "animal"}, "category", "pick one of"),
        ({"flagged": [99]}, "flagged", "do not belong"),
    ]
    for change, field, message in cases:
        with pytest.raises(AnswerInvalid) as info:
            _submit(a, w, **change)
        assert message in info.value.errors[field][0]
    # 13 unit tiles (10 top + 3 controls of 14+3 at the default 60 cap: 14 tops); mark 5 top tiles.
    task = a.task
    controls = _controls(task)
    tops = [p for p in range(len(task.tile_order)) if p not in controls]
    with pytest.raises(AnswerInvalid, match="too many images"):
        _submit(a, w, flagged=controls + tops[:5])
    outcome = _submit(a, w, flagged=controls + tops[:4], concept="  Pine   trees ")
    assert outcome.answer.precision == pytest.approx((len(tops) - 4) / len(tops))
    assert outcome.answer.concept_text == "Pine trees"
    assert outcome.answer.concept is not None


def test_control_check_asks_once_then_records_a_failure(
    crowd_run, django_capture_on_commit_callbacks
):
    campaign = _live(crowd_run)
    w = _worker("c")
    a = services.assignment_next(worker=w, campaign=campaign)
    first = _submit(a, w, flagged=[])
    assert first.revise and first.answer is None
    assert "look again" in first.messages[0]
    with django_capture_on_commit_callbacks() as callbacks:
        second = _submit(a, w, flagged=[], active_seconds=10_000)
    assert second.answer.control_failed and second.answer.revisions == 1
    assert len(callbacks) == 1  # the label recompute is enqueued after commit
    a.refresh_from_db()
    assert a.status == A.SUBMITTED and a.submitted_at and a.completion_code
    assert a.active_seconds <= (a.submitted_at - a.accepted_at).total_seconds()
    with pytest.raises(CrowdError, match="already submitted"):
        _submit(a, w)


def test_nobody_submits_for_someone_else(crowd_run):
    campaign = _live(crowd_run)
    owner, thief = _worker("o"), _worker("t")
    a = services.assignment_next(worker=owner, campaign=campaign)
    with pytest.raises(CrowdError, match="not yours"):
        _submit(a, thief)
    with pytest.raises(CrowdError, match="not yours"):
        services.assignment_return(assignment=a, worker=thief)


def test_review_in_bulk_with_reasons_and_auto_approve(crowd_run, make_user):
    researcher = make_user("researcher")
    campaign = _live(crowd_run)
    answers = []
    for i in range(3):
        w = _worker(f"r{i}")
        a = services.assignment_next(worker=w, campaign=campaign)
        _submit(a, w)
        answers.append(a.pk)
    with pytest.raises(CrowdError, match="reason"):
        services.assignment_review(assignment_ids=answers, approve=False, actor=researcher)
    rejected = services.assignment_review(
        assignment_ids=answers[:2], approve=False, actor=researcher, reason="Concept is unrelated"
    )
    assert [a.pk for a in rejected] == answers[:2]
    assert Assignment.objects.get(pk=answers[0]).reject_reason == "Concept is unrelated"
    # Already reviewed answers are left alone.
    assert (
        services.assignment_review(assignment_ids=answers[:1], approve=True, actor=researcher) == []
    )
    assert services.auto_approve_due() == 0
    later = timezone.now() + timedelta(hours=campaign.auto_approve_hours + 1)
    assert services.auto_approve_due(now=later) == 1
    assert Assignment.objects.get(pk=answers[2]).status == A.APPROVED
    events = AuditEvent.objects.filter(action__in=["assignment.reject", "assignment.auto_approve"])
    assert events.count() == 3
    assert events.filter(actor=researcher).count() == 2


def test_gold_tasks_are_mixed_in_scored_and_stop_poor_workers(db):
    run = build_run(units=6)
    units = list(run.layer_set.get().units.order_by("index"))
    gold = {u.pk: ("tree", "object") for u in units[:3]}
    campaign = _live(run, gold=gold, gold_rate=0.5, min_gold_accuracy=0.75)
    w = _worker("g")
    served = []
    with pytest.raises(NoTask, match="check tasks"):
        for _ in range(6):
            a = services.assignment_next(worker=w, campaign=campaign)
            served.append(a.task.is_gold)
            _submit(a, w, concept="sky", category="scene")  # always wrong on gold
    assert served[0] is True and sum(served) == 3
    accuracy, count = quality.gold_accuracy(worker=w, campaign=campaign)
    assert (accuracy, count) == (0.0, 3)
    good = _worker("good")
    a = services.assignment_next(worker=good, campaign=campaign)
    _submit(a, good, concept="Trees", category="object")
    assert quality.gold_accuracy(worker=good, campaign=campaign) == (1.0, 1)


def test_worker_table_reports_controls_time_and_agreement(crowd_run):
    campaign = _live(crowd_run)
    w = _worker("q")
    concepts = ["tree", "sky", "dog"]
    for concept in concepts:
        a = services.assignment_next(worker=w, campaign=campaign)
        flagged = [] if concept == "dog" else None
        outcome = _submit(a, w, concept=concept, flagged=flagged, active_seconds=5.0)
        if outcome.revise:
            _submit(a, w, concept=concept, flagged=[], active_seconds=5.0)
        UnitLabel.objects.create(
            unit=a.task.unit, concept_text="Trees" if concept != "sky" else "cloud"
        )
    [row] = quality.campaign_worker_table(campaign=campaign)
    assert row.answers == 3
    assert row.control_pass_rate == pytest.approx(2 / 3)
    assert row.median_seconds is not None and row.median_seconds <= 5.0
    assert row.agreement_answers == 3 and row.agreement == pytest.approx(1 / 3)


def test_demo_campaign_is_live_and_sized_to_the_run(db):
    run = build_run(units=2, tops=12)
    campaign = services.demo_campaign_create(
        run=run, layers=["features.10"]
    )  # an alias: all layers
    assert campaign.status == "live" and campaign.layers == ["conv5"]
    assert all(len(h.tile_order) == 15 for h in campaign.tasks.all())


def test_create_campaign_command_reads_gold_from_csv(db, tmp_path):
    from django.core.management import call_command

    run = build_run(units=2)
    gold = tmp_path / "gold.csv"
    gold.write_text("layer,unit,concept,category\nconv5,1,car,object\n")
    call_command("create_campaign", str(run.pk), "--layers", "conv5", "--gold", str(gold), "--live")
    task = Task.objects.get(unit__index=1, campaign__run=run)
    assert task.is_gold and task.campaign.status == "live"
    # Gold from automatic labels: the unit's best label and the category it came from.
    unit = run.layer_set.get().units.get(index=0)
    AutoLabel.objects.create(unit=unit, category="", label="grass", iou=0.3)
    AutoLabel.objects.create(unit=unit, category="material", label="grass", iou=0.3)
    call_command(
        "create_campaign", str(run.pk), "--layers", "conv5", "--gold-from-auto-labels", "0.2"
    )
    auto = Task.objects.filter(unit=unit).latest("pk")
    assert auto.is_gold and (auto.gold_concept, auto.gold_category) == ("grass", "material")


def test_sweep_tasks_are_idempotent(crowd_run):
    from annotate.crowd import tasks

    campaign = _live(crowd_run)
    a = services.assignment_next(worker=_worker("t"), campaign=campaign)
    Assignment.objects.filter(pk=a.pk).update(
        lease_expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert tasks.expire_leases.delay().get() == 1
    assert tasks.expire_leases.delay().get() == 0
    assert tasks.auto_approve.delay().get() == 0


def test_agreement_and_gold_follow_researcher_merges(crowd_run):
    from core.models import Concept

    campaign = _live(crowd_run)
    w = _worker("m")
    a = services.assignment_next(worker=w, campaign=campaign)
    _submit(a, w, concept="Puppy")
    UnitLabel.objects.create(unit=a.task.unit, concept_text="hound")
    [row] = quality.campaign_worker_table(campaign=campaign)
    assert row.agreement == 0.0
    stored = Assignment.objects.get(pk=a.pk).answer.concept
    hound, _ = Concept.objects.get_or_create(name="hound")
    Concept.objects.filter(pk=stored.pk).update(merged_into=hound)
    [row] = quality.campaign_worker_table(campaign=campaign)
    assert row.agreement == 1.0


def test_a_saved_answer_updates_the_units_label(crowd_run, django_capture_on_commit_callbacks):
    campaign = _live(crowd_run)
    w = _worker("l")
    a = services.assignment_next(worker=w, campaign=campaign)
    with django_capture_on_commit_callbacks(execute=True):
        _submit(a, w, concept="Trees", category="object")
    label = UnitLabel.objects.get(unit=a.task.unit, source=UnitLabel.Source.CROWD)
    assert label.answer_count == 1 and label.concept_text
