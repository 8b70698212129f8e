"""The run picker on every report page: it names the run shown (and why that one), lists the
network's runs, and a pick through ?run= (or ?run_<network>= when comparing) changes the data."""

import re

import pytest
from django.urls import reverse

from annotate.labels.aggregation import run_labels_recompute

ANSWERS = [
    (0, "a", "dog", "object", 0.9, [], "approved"),
    (0, "b", "dog", "object", 0.8, [0], "approved"),
    (1, "a", "sky", "region", 0.9, [], "approved"),
]


@pytest.fixture
def two_runs(crowd_world):
    """tiny-net with a labeled run and a newer run nobody has labeled yet."""
    from dissect.models import DissectionRun, Layer, Unit

    data = crowd_world(ANSWERS)
    run_labels_recompute(run_id=data["run"].pk)
    newer = DissectionRun.objects.create(
        network=data["run"].network,
        image_set=data["run"].image_set,
        layers=["conv5"],
        status="done",
        parameters={"top_k": 4},
    )
    layer = Layer.objects.create(run=newer, name="conv5", order=0, unit_count=1)
    Unit.objects.create(layer=layer, index=0)
    return data["run"], newer


def _selected_run(html: str, field: str = "run") -> int:
    select = re.search(rf'<select id="run-picker-{field}" name="{field}".*?</select>', html, re.S)
    assert select, f"no run picker named {field}"
    return int(re.search(r'<option value="(\d+)" selected>', select.group(0)).group(1))


REPORTS = ["categories", "detectors", "concept-detectors", "precision"]


@pytest.mark.parametrize("report", REPORTS)
def test_report_pages_show_the_run_and_offer_the_others(client, make_user, two_runs, report):
    labeled, newer = two_runs
    client.force_login(make_user("researcher"))
    url = reverse(f"labels:{report}", args=["tiny-net"])
    html = client.get(url).content.decode()
    # The default is the newest run WITH crowd labels, and the page says so.
    assert _selected_run(html) == labeled.pk
    assert "picked automatically, the newest run of tiny-net with crowd labels" in html
    assert f'<option value="{newer.pk}">run {newer.pk}' in html and "no crowd labels yet" in html
    picked = client.get(url, {"run": newer.pk}).content.decode()
    assert _selected_run(picked) == newer.pk and f"Showing run {newer.pk} (chosen)" in picked
    # The report tabs keep a chosen run.
    assert f'{reverse("labels:detectors", args=["tiny-net"])}?run={newer.pk}"' in picked


def test_the_picker_keeps_the_other_query_parameters(client, make_user, two_runs):
    labeled, _ = two_runs
    client.force_login(make_user("researcher"))
    url = reverse("labels:concept-detectors", args=["tiny-net"])
    html = client.get(url, {"category": "region", "run": labeled.pk}).content.decode()
    form = re.search(r'<form method="get" class="run-picker".*?</form>', html, re.S).group(0)
    assert '<input type="hidden" name="category" value="region">' in form
    assert 'name="run"' not in form.replace('<select id="run-picker-run" name="run"', "")


def test_a_pick_changes_the_data(client, make_user, two_runs):
    labeled, newer = two_runs
    client.force_login(make_user("researcher"))
    url = reverse("labels:categories", args=["tiny-net"])
    default = client.get(url + "?format=csv").content.decode().splitlines()
    picked = client.get(url + f"?run={newer.pk}&format=csv").content.decode().splitlines()
    assert default[1].split(",")[:3] == ["conv5", "3", "3"]  # 3 units, 3 counted answers
    assert picked[1].split(",")[:3] == ["conv5", "1", "0"]  # the newer run: 1 unit, none


def test_agreement_units_and_compare_have_pickers(client, make_user, two_runs, crowd_world):
    labeled, newer = two_runs
    other = crowd_world(ANSWERS, name="other-net")
    run_labels_recompute(run_id=other["run"].pk)
    client.force_login(make_user("researcher"))
    agreement = client.get(reverse("labels:agreement"), {"network": "tiny-net"}).content.decode()
    assert _selected_run(agreement) == labeled.pk
    units = client.get(reverse("labels:units"), {"network": "tiny-net", "run": newer.pk})
    assert _selected_run(units.content.decode()) == newer.pk
    compare = client.get(
        reverse("labels:compare"),
        {"network": ["tiny-net", "other-net"], "run_tiny-net": newer.pk},
    ).content.decode()
    assert _selected_run(compare, "run_tiny-net") == newer.pk
    assert _selected_run(compare, "run_other-net") == other["run"].pk


def test_an_empty_report_says_why_and_what_to_do(client, make_user, two_runs):
    _, newer = two_runs
    client.force_login(make_user("researcher"))
    for report in REPORTS:
        url = reverse(f"labels:{report}", args=["tiny-net"])
        html = client.get(url, {"run": newer.pk}).content.decode()
        assert f"No crowd labels on run {newer.pk} yet" in html, report
        assert "manage.py demo" in html and "start a campaign" in html
        assert "<svg" not in html  # no empty axes in place of the message
    agreement = client.get(
        reverse("labels:agreement"), {"network": "tiny-net", "run": newer.pk}
    ).content.decode()
    assert f"No crowd labels on run {newer.pk} yet" in agreement


def test_labels_without_detectors_say_what_a_detector_needs(client, make_user, crowd_world):
    from annotate.labels.aggregation import run_labels_recompute

    data = crowd_world([(0, "a", "dog", "object", 0.9, [], "approved")], name="one-answer")
    run_labels_recompute(run_id=data["run"].pk)
    client.force_login(make_user("researcher"))
    html = client.get(reverse("labels:detectors", args=["one-answer"])).content.decode()
    assert "none is a detector yet" in html and "at least 2 answers naming its concept" in html
