"""The README's start command: `manage.py demo` ends with live tasks, the demo accounts, and reports
populated by the SIMULATED crowd (detectors per layer, Fig. 10, agreement) and the ICLR'15 import.

The command runs once per session (``demo_snapshot`` in tests/conftest.py, shared with the
browser test of the demo's reports); ``demo_world`` gives this test the database and folders it
left, its own copy."""

import pytest
from django.core.management import call_command

from annotate.crowd import services as crowd
from annotate.crowd.models import Assignment, Campaign, Worker
from core.roles import user_role


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_demo_command_tells_the_whole_story_and_is_idempotent(demo_world, django_user_model):
    from annotate.explain.selectors import labeled_units
    from annotate.labels import reports
    from annotate.labels.models import UnitLabel
    from dissect.models import AutoLabel, DissectionRun, Network

    # What `manage.py demo --images 24 --top-k 12` stored (demo_world).
    campaigns = list(Campaign.objects.exclude(run__status="imported").order_by("pk"))
    assert [c.run.network.name for c in campaigns] == ["demo-places", "demo-objects"]
    assert all(c.status == Campaign.Status.LIVE and c.tasks.count() > 0 for c in campaigns)
    users = {u.username: user_role(u) for u in django_user_model.objects.all()}
    assert users == {
        "demo-annotator": "annotator",
        "demo-researcher": "researcher",
        "demo-admin": "admin",
    }
    annotator = django_user_model.objects.get(username="demo-annotator")
    assert annotator.check_password("demo-annotator")
    # The demo-objects campaign is left to people.
    worker = crowd.worker_for_user(user=annotator)
    assignment = crowd.assignment_next(worker=worker, campaign=campaigns[1])
    assert assignment.task.campaign == campaigns[1]

    # The simulated crowd answered every demo-places unit the world has a ground truth for (its
    # automatic label: a unit that never fires on 24 images has none), and only it did.
    places = campaigns[0]
    answers = Assignment.objects.filter(task__campaign=places, status="submitted")
    known = AutoLabel.objects.filter(unit__layer__run=places.run, category="").count()
    stored = answers.count()
    assert known > 0 and stored == known * places.redundancy
    assert set(answers.values_list("worker__source", flat=True)) == {Worker.Source.SIMULATED}
    assert all(p.startswith("sim-") for p in answers.values_list("worker__pseudonym", flat=True))
    # The reports: crowd labels and detectors in every layer, concepts for Fig. 10, agreement.
    run = places.run
    rows = reports.layer_report(run=run)
    assert [r.layer for r in rows] == list(places.layers)
    assert all(r.units >= r.labeled_units > 0 and r.detectors > 0 for r in rows)
    assert reports.concept_detectors(run=run, category=None)["rows"]
    assert UnitLabel.objects.filter(unit__layer__run=run, source="crowd").count() == known
    # Explain finds crowd-labeled units of demo-places.
    network = Network.objects.get(name="demo-places")
    assert labeled_units(network=network, source="crowd")[1]
    # The ICLR'15 answers are imported: the paper's two networks with their detectors.
    imported = DissectionRun.objects.filter(status="imported")
    assert sorted(r.network.name for r in imported) == ["imagenet-alexnet", "places205-alexnet"]

    call_command("demo", *demo_world.args)  # a second run reuses everything
    assert list(Campaign.objects.exclude(run__status="imported").order_by("pk")) == campaigns
    assert answers.count() == stored  # no second round of simulated answers
