"""The whole-range report page (issue 16) over a color-world campaign answered by simulated
workers: the measures from the crowd beside those from the label maps, the units that hold at
the top but fail over the range, and the worker reliabilities."""

import csv
import io

import pytest
from django.urls import reverse

from annotate.crowd import services, verification
from annotate.crowd.models import VerificationAssignment, VerificationItem
from annotate.labels import whole_range
from tests.annotate.crowd.test_verification import build_verification_campaign

pytestmark = pytest.mark.django_db


def _truthful(item) -> str:
    return "yes" if (item.coverage or 0) >= 0.05 else "no"


def _answer(task, worker, rule):
    a = VerificationAssignment.objects.create(task=task, worker=worker)
    for item in task.items.order_by("position"):
        token = verification.tile_token(task_id=item.task_id, position=item.position)
        verification.verification_answer(
            assignment=a, worker=worker, token=token, answer=rule(item)
        )


@pytest.fixture
def answered(tmp_path, make_user):
    # The green unit fires only on the brightest green boxes (a high threshold).
    campaign = build_verification_campaign(
        tmp_path, images=10, checks=2, redundancy=3, thresholds={1: 0.9}
    )
    red, green, blue = campaign.verification_tasks.order_by("unit__index")
    careful = [services.worker_for_user(user=make_user("annotator", f"c{i}")) for i in range(3)]
    for task in (red, blue):
        for worker in careful:
            _answer(task, worker, _truthful)
    # The green unit's workers say yes to everything: its label holds at the top, but the unit
    # misses most images they call green (low recall over the range).
    for worker in careful:
        _answer(green, worker, lambda item: "yes")
    return campaign


@pytest.mark.slow  # a crowd-kit fit plus three bootstraps: ~9 s here
def test_crowd_measures_match_the_label_maps_where_workers_are_careful(answered):
    rows = {r.concept: r for r in whole_range.campaign_unit_measures(campaign=answered, reps=100)}
    red = rows["red box"]
    assert red.images_answered == 10 and red.workers == 3
    for name in ("precision", "recall", "f1"):
        # Truthful answers reproduce the maps' truth: the same weighted sums.
        assert red.crowd[name].value == pytest.approx(red.maps[name].value, abs=1e-6)
    assert red.crowd["f1"].value > 0.9 and not red.holds_at_top_fails_over_range
    green = rows["green box"]
    assert green.top_yes_share > 0.9 and green.crowd["f1"].value < whole_range.FAILS_F1
    assert [r.concept for r in whole_range.holds_at_top_fails_over_range(rows.values())] == [
        "green box"
    ]


def test_the_report_page_lists_layers_failing_units_and_workers(client, make_user, answered):
    client.force_login(make_user("researcher"))
    url = reverse("labels:whole-range", args=[answered.run.network.name])
    page = client.get(url, {"run": answered.run.pk})
    assert page.status_code == 200
    html = page.content.decode()
    assert "conv · auto" in html and "<svg" in html
    failing = html.split('id="failing"')[1].split('id="units"')[0]
    assert "green box" in failing and "red box" not in failing
    unit_url = reverse(
        "dissect:unit-detail", kwargs={"run_id": answered.run.pk, "layer_name": "conv", "index": 1}
    )
    assert unit_url in failing
    workers = html.split('id="workers"')[1]
    assert html.count("Estimated accuracy") == 1 and "w-" in workers
    # Each careful worker answered every check of the red and blue units right; on the green
    # unit, saying yes to everything, they got its 'fits' checks right and its 'not' ones wrong.
    checks = VerificationItem.objects.filter(task__campaign=answered).exclude(planted="")
    green = checks.filter(task__concept="green box")
    right = checks.exclude(task__concept="green box").count() + green.filter(planted="fits").count()
    assert green.filter(planted="not").exists()
    assert workers.count(f"{right} of {checks.count()}") == 3
    table = client.get(url, {"run": answered.run.pk, "format": "csv"})
    rows = list(csv.reader(io.StringIO(table.content.decode())))
    assert rows[0][:3] == ["layer", "unit", "label"] and len(rows) == 4


def test_annotators_cannot_read_the_report(client, make_user):
    client.force_login(make_user("annotator"))
    url = reverse("labels:whole-range", args=["any-network"])
    assert client.get(url).status_code == 403


def test_the_report_is_computed_once_until_an_answer_arrives(answered, make_user, monkeypatch):
    from django.core.cache import cache

    cache.clear()
    fits = []
    real_fit = whole_range.campaign_noise_model
    monkeypatch.setattr(
        whole_range, "campaign_noise_model", lambda **kw: fits.append(1) or real_fit(**kw)
    )
    first = whole_range.campaign_report(campaign=answered, reps=20)
    again = whole_range.campaign_report(campaign=answered, reps=20)
    assert len(fits) == 1  # the second view read the cache
    assert [r.crowd["f1"].value for r in again[0]] == [r.crowd["f1"].value for r in first[0]]
    # A new answer (another worker on the red unit) makes the next view fit again.
    red = answered.verification_tasks.order_by("unit__index").first()
    _answer(red, services.worker_for_user(user=make_user("annotator", "late")), _truthful)
    whole_range.campaign_report(campaign=answered, reps=20)
    assert len(fits) == 2
