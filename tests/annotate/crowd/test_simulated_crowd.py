"""The simulated crowd: marked as simulated, recovers the ground truth through the real services,
and adaptive redundancy reaches the same labels with fewer answers than fixed redundancy."""

import pytest

from annotate.crowd import services
from annotate.crowd.models import Worker
from annotate.crowd.redundancy import worker_reliability
from annotate.demo.simulated_crowd import (
    CrowdModel,
    Strategy,
    UnitTruth,
    campaign_score,
    crowd_replica,
    crowd_simulate,
    simulated_workers,
)
from dissect.models import Image, Unit
from tests.annotate.crowd.conftest import build_run

pytestmark = pytest.mark.django_db
CONCEPTS = ["tree", "sky", "road", "car", "water", "grass", "house", "person"]


def _world(run):
    """Ground truth for every unit (clear detectors with two plausible confusions), and images
    that show every concept (so careful workers mark only controls)."""
    units = list(Unit.objects.filter(layer__run=run).order_by("index"))
    truths = {
        u.pk: UnitTruth(
            CONCEPTS[i % len(CONCEPTS)],
            "object",
            0.2,
            (("bush", "object"), ("wall", "region")),
        )
        for i, u in enumerate(units)
    }
    labels = {pk: frozenset(CONCEPTS) for pk in Image.objects.values_list("pk", flat=True)}
    return truths, labels


def _run_strategy(run, truths, labels, model, **parameters):
    campaign = services.campaign_create(run=run, layers=["conv5"], **parameters)
    campaign = services.campaign_set_status(campaign=campaign, status="live", actor=None)
    crowd_simulate(campaign=campaign, model=model, truths=truths, labels=labels)
    return campaign, campaign_score(campaign=campaign, strategy="x", truths=truths)


def test_simulated_workers_are_marked_and_reproducible():
    model = CrowdModel(workers=10, spammer_share=0.3, seed=4)
    first = simulated_workers(model=model)
    assert [w.pk for w, _ in simulated_workers(model=model)] == [w.pk for w, _ in first]
    assert sum(spam for _, spam in first) == 3
    assert all(w.source == Worker.Source.SIMULATED and w.is_simulated for w, _ in first)
    assert all(w.pseudonym.startswith("sim-") for w, _ in first)


@pytest.mark.slow
def test_the_crowd_recovers_the_truth_and_adaptive_redundancy_spends_less():
    run = build_run(units=8)
    truths, labels = _world(run)
    model = CrowdModel(workers=16, accuracy=0.85, spammer_share=0.25, seed=1)
    fixed, fixed_score = _run_strategy(run, truths, labels, model, redundancy=5)
    adaptive, adaptive_score = _run_strategy(
        run, truths, labels, model, redundancy=2, max_answers=5, target_confidence=0.9
    )
    assert fixed_score.answers == 8 * 5 and fixed_score.units == 8
    # Five answers of a 75 %-careful crowd, 85 % accurate: the plurality is right on (nearly)
    # every unit; 7 of 8 leaves room for one unlucky draw of the seeded crowd.
    assert fixed_score.correct_plurality >= 7
    assert adaptive_score.correct_posterior >= fixed_score.correct_plurality - 1
    assert adaptive_score.answers <= 0.7 * fixed_score.answers  # >= 30 % fewer answers
    assert all(2 <= n <= 5 for n in [t.assignments.count() for t in adaptive.tasks.all()])
    # The noise model tells the spammers from the careful workers.
    workers = simulated_workers(model=model)
    r = worker_reliability(campaign=fixed, worker_ids=[w.pk for w, _ in workers])
    careful = [r[w.pk] for w, spam in workers if not spam]
    spammers = [r[w.pk] for w, spam in workers if spam]
    assert min(careful) > max(spammers)


@pytest.mark.parametrize(
    "parameters",
    [{"redundancy": 3}, {"redundancy": 2, "max_answers": 5, "target_confidence": 0.9}],
    ids=["fixed", "adaptive"],
)
def test_the_in_memory_replica_stores_what_the_services_store(parameters):
    """simulate_crowd --replica measures many seeds in memory: on the same campaign and crowd
    it must spend the answers the services spend and reach the same labels."""
    run = build_run(units=8)
    truths, labels = _world(run)
    # Half the units unclear (careful workers right half as often), so workers disagree and
    # adaptive redundancy asks for more answers on some units, not on others.
    truths = {
        pk: UnitTruth(t.concept, t.category, 0.2 if i % 2 else 0.01, t.runners_up)
        for i, (pk, t) in enumerate(sorted(truths.items()))
    }
    model = CrowdModel(workers=12, accuracy=0.8, spammer_share=0.25, seed=3)
    campaign, real = _run_strategy(run, truths, labels, model, **parameters)
    replica = crowd_replica(campaign=campaign, model=model, truths=truths, labels=labels)
    assert (replica.units, replica.answers) == (real.units, real.answers) == (8, real.answers)
    assert (replica.correct_plurality, replica.correct_posterior) == (
        real.correct_plurality,
        real.correct_posterior,
    )
    counts = sorted(t.assignments.filter(status="submitted").count() for t in campaign.tasks.all())
    if "max_answers" in parameters:  # the adaptive campaign spent unevenly
        assert counts[0] == 2 and counts[-1] > 2
        # Another strategy on the same campaign: the replica follows the strategy's numbers.
        fixed = crowd_replica(
            campaign=campaign, model=model, strategy=Strategy("fixed 4", 4), truths=truths,
            labels=labels,
        )  # fmt: skip
        assert fixed.answers == 8 * 4
    else:
        assert counts == [3] * 8


def test_exports_mark_simulated_answers():
    import csv
    import io

    from annotate.labels.exports import iter_unit_records, write_csv

    run = build_run(units=2)
    truths, labels = _world(run)
    person = Worker.objects.create(pseudonym="person")
    campaign = services.campaign_create(run=run, layers=["conv5"], redundancy=2)
    campaign = services.campaign_set_status(campaign=campaign, status="live", actor=None)
    crowd_simulate(
        campaign=campaign, model=CrowdModel(workers=3, spammer_share=0.0), truths=truths,
        labels=labels, max_answers=3,
    )  # fmt: skip
    a = services.assignment_next(worker=person, campaign=campaign)
    services.assignment_submit(
        assignment=a, worker=person, concept="tree", category="object",
        flagged_positions=[p for p, pk in enumerate(a.task.tile_order) if pk in set(
            a.task.unit.unit_images.filter(kind="control").values_list("pk", flat=True))],
    )  # fmt: skip
    from annotate.labels.aggregation import run_labels_recompute

    run_labels_recompute(run_id=run.pk)  # on commit in the app; this test never commits
    records = list(iter_unit_records(run=run))
    answers = [x for r in records for x in r["answers"]]
    assert sorted((x["worker"].startswith("sim-"), x["simulated"]) for x in answers) == [
        (False, False),
        (True, True),
        (True, True),
        (True, True),
    ]
    out = io.StringIO()
    write_csv(iter(records), out)
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert sum(int(r["simulated_answers"]) for r in rows) == 3


def test_simulate_crowd_reads_seed_ranges():
    from django.core.management.base import CommandError

    from annotate.management.commands.simulate_crowd import _seeds, _spread

    assert _seeds("0-2,5") == [0, 1, 2, 5]
    assert _seeds("7") == [7]
    with pytest.raises(CommandError, match="--seeds: give numbers and ranges"):
        _seeds("a-b")
    assert _spread([0.8, 0.9]) == (pytest.approx(0.85), pytest.approx(0.0707, abs=1e-4))
