"""Report pages, downloads, merges and exports over HTTP, and the role x action table."""

import pytest
from django.urls import reverse

from annotate.labels.aggregation import run_labels_recompute
from core.access import ACTIONS, PERMISSIONS, can
from core.roles import ROLES

ANSWERS = [
    (0, "a", "dog", "object", 0.9, [], "approved"),
    (0, "b", "dogs", "object", 0.8, [0], "submitted"),
    (1, "a", "sky", "region", 0.9, [], "approved"),
    (1, "b", "blue sky", "region", 0.7, [1, 2], "approved"),
    (2, "a", "zorblax", "object", 0.3, [0, 1, 2], "approved"),
    (2, "b", "dog", "object", 0.4, [0, 1], "approved"),
]


@pytest.fixture
def world(crowd_world):
    data = crowd_world(ANSWERS)
    run_labels_recompute(run_id=data["run"].pk)
    return data


def client_for(client, make_user, role):
    client.force_login(make_user(role))
    return client


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("action", ACTIONS)
def test_permission_table(make_user, role, action):
    assert can(make_user(role), action) == (role in PERMISSIONS[action])


def test_staff_without_role_may_read_reports_not_export(db, django_user_model):
    staff = django_user_model.objects.create_user("staffer", password="pw", is_staff=True)
    assert can(staff, "report.view") and not can(staff, "export.create")


@pytest.mark.parametrize(
    "role, report, export", [("annotator", 403, 403), ("researcher", 200, 403), ("admin", 200, 200)]
)
def test_pages_by_role(client, make_user, world, role, report, export):
    client_for(client, make_user, role)
    assert client.get(reverse("labels:index")).status_code == report
    assert client.get(reverse("labels:categories", args=["tiny-net"])).status_code == report
    assert client.get(reverse("labels:exports")).status_code == export


def test_anonymous_users_are_sent_to_login(client, world):
    response = client.get(reverse("labels:index"))
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_report_pages_render_and_download(client, make_user, world):
    client_for(client, make_user, "researcher")
    for name in ("categories", "detectors", "concept-detectors", "precision"):
        url = reverse(f"labels:{name}", args=["tiny-net"])
        page = client.get(url)
        assert page.status_code == 200, name
        assert b"<svg" in page.content and b"<table" in page.content
        csv_response = client.get(url + "?format=csv")
        assert csv_response["Content-Type"].startswith("text/csv")
        assert (
            csv_response.content.decode().splitlines()[0].startswith(("layer", "concept", "prec"))
        )
        svg = client.get(url + "?format=svg")
        assert svg["Content-Type"].startswith("image/svg+xml") and svg.content.startswith(b"<svg")
    rows = client.get(reverse("labels:categories", args=["tiny-net"]) + "?format=csv")
    header, line = rows.content.decode().splitlines()
    # conv5: 6 counted answers, 4 object and 2 region -> 66.67% and 33.33%.
    assert line.split(",")[:3] == ["conv5", "3", "6"]
    assert "66.67" in line and "33.33" in line
    assert client.get(reverse("labels:categories", args=["nope"])).status_code == 404


def test_compare_agreement_units_pages(client, make_user, world, crowd_world):
    other = crowd_world(ANSWERS[:2], name="other-net")
    run_labels_recompute(run_id=other["run"].pk)
    client_for(client, make_user, "researcher")
    page = client.get(reverse("labels:compare") + "?network=tiny-net&network=other-net")
    assert page.status_code == 200 and b"<svg" in page.content
    assert b"tiny-net" in page.content and b"other-net" in page.content
    assert client.get(reverse("labels:compare")).status_code == 200

    page = client.get(reverse("labels:agreement") + "?network=tiny-net&method=mv")
    assert page.status_code == 200 and b"Fleiss" in page.content
    assert b"tiny-net-a" in page.content  # the worker table
    workers_csv = client.get(
        reverse("labels:agreement") + "?network=tiny-net&method=mv&table=workers&format=csv"
    )
    assert workers_csv.content.decode().splitlines()[0].startswith("worker,answers")
    campaign = client.get(reverse("labels:agreement") + f"?campaign={world['campaign'].pk}")
    assert campaign.status_code == 200

    found = client.get(reverse("labels:units") + "?q=dog")
    assert found.status_code == 200
    assert found.content.count(b'href="/reports/units/') >= 2  # unit 0 and unit 2 (raw answer)
    csv_rows = client.get(reverse("labels:units") + "?q=sky&format=csv").content.decode()
    assert len(csv_rows.splitlines()) == 2 and ",sky,region," in csv_rows
    unit = world["units"][0]
    detail = client.get(reverse("labels:unit", args=[unit.pk]))
    assert detail.status_code == 200 and b"tiny-net-b" in detail.content


def test_merge_page_merges_and_recomputes(client, make_user, world):
    from annotate.labels.models import UnitLabel
    from core.models import AuditEvent, Concept

    client_for(client, make_user, "researcher")
    response = client.post(
        reverse("labels:concepts"), {"action": "merge", "source": "zorblax", "target": "dog"}
    )
    assert response.status_code == 302
    assert Concept.objects.get(name="zorblax").merged_into.name == "dog"
    label = UnitLabel.objects.get(unit=world["units"][2])
    assert label.concept_text == "dog" and label.agreement == 1.0
    assert AuditEvent.objects.filter(action="concept.merge").exists()
    page = client.get(reverse("labels:concepts") + "?q=zorb")
    assert b"Undo merge" in page.content


def test_admin_starts_and_downloads_an_export(client, make_user, world):
    from annotate.labels.exports import export_run
    from annotate.labels.models import Export
    from core.models import AuditEvent

    client_for(client, make_user, "admin")
    response = client.post(reverse("labels:exports"), {"network": "tiny-net", "kind": "jsonl"})
    assert response.status_code == 302
    export = Export.objects.get()
    assert export.created_by is not None and export.status == Export.Status.PENDING
    export_run(export_id=export.pk)
    download = client.get(reverse("labels:export-download", args=[export.pk]))
    assert download.status_code == 200
    body = b"".join(download.streaming_content)
    assert len(body.splitlines()) == 3
    assert download["X-Checksum-SHA256"] == Export.objects.get().sha256
    assert AuditEvent.objects.filter(action="export.download").count() == 1
    page = client.get(reverse("labels:exports"))
    assert b"download" in page.content


def test_api_lists_labels_and_layer_report(client, make_user, world):
    client_for(client, make_user, "researcher")
    data = client.get(reverse("labels-api:unit-labels") + "?network=tiny-net&q=sky").json()
    assert data["count"] == 1
    assert data["results"][0]["concept_text"] == "sky"
    assert data["results"][0]["layer"] == "conv5"
    layers = client.get(reverse("labels-api:layers", args=["tiny-net"])).json()
    assert layers["layers"][0]["answers"] == 6
    assert client.get(reverse("labels-api:layers", args=["nope"])).status_code == 404
    client.logout()
    client_for(client, make_user, "annotator")
    assert client.get(reverse("labels-api:unit-labels")).status_code == 403


def test_recompute_button_redirects_only_to_this_site(client, make_user, world):
    client_for(client, make_user, "researcher")
    url = reverse("labels:recompute")
    response = client.post(url, {"run": world["run"].pk, "next": "https://evil.example/"})
    assert response.status_code == 302 and response["Location"] == reverse("labels:index")
    back = reverse("labels:categories", args=["tiny-net"])
    response = client.post(url, {"run": world["run"].pk, "next": back})
    assert response["Location"] == back
    response = client.post(url, {"unit": world["units"][0].pk})
    assert response["Location"] == reverse("labels:unit", args=[world["units"][0].pk])
    client.logout()
    client_for(client, make_user, "annotator")
    assert client.post(url, {"run": world["run"].pk}).status_code == 403


def test_comparison_chart_names_each_network_whole():
    """demo-places and demo-objects share their first word: the chart's key gives whole names."""
    from annotate.labels.plots import comparison_chart

    row = {"layer": "conv5", "category_percent": {"object": 60.0, "scene": 40.0}}
    svg = comparison_chart(
        comparison={"layers": ["conv5"], "networks": {"demo-places": [row], "demo-objects": [row]}},
        title="Categories",
    )
    assert "A = demo-places · B = demo-objects" in svg
    assert ">demo<" not in svg  # no name cut at the hyphen
    assert "conv5 demo-objects: object 60.0%" in svg  # the tooltip names the network too


def test_detector_columns_say_yes_or_no(client, make_user, world):
    """The unit page and the unit browser answer the Detector column with yes or no, never blank."""
    from annotate.labels.models import UnitLabel

    client_for(client, make_user, "researcher")
    run = world["run"]
    for unit in world["units"]:
        label = UnitLabel.objects.get(unit=unit, source="crowd")
        page = client.get(
            reverse("dissect:unit-detail", args=[run.pk, "conv5", unit.index])
        ).content.decode()
        expected = '<span class="badge ok">yes</span>' if label.is_detector else "<td>no</td>"
        assert expected in page, (unit.index, label.is_detector)
    browser = client.get(reverse("labels:units")).content.decode()
    assert '<span class="badge ok">yes</span>' in browser and "<td>no</td>" in browser


def test_merge_into_a_vocabulary_concept_nobody_has_answered_yet(client, make_user, world):
    from annotate.labels.models import UnitLabel
    from core.models import Concept

    client_for(client, make_user, "researcher")
    assert not Concept.objects.filter(name="animal").exists()
    response = client.post(
        reverse("labels:concepts"),
        {"action": "merge", "source": "zorblax", "target": "creature"},  # a synonym of animal
        follow=True,
    )
    assert "Merged zorblax into animal" in response.content.decode()
    animal = Concept.objects.get(name="animal")
    assert animal.source == Concept.Source.VOCABULARY and animal.category == "object"
    assert Concept.objects.get(name="zorblax").merged_into == animal
    assert UnitLabel.objects.get(unit=world["units"][2]).concept_text in {"animal", "dog"}
    unknown = client.post(
        reverse("labels:concepts"),
        {"action": "merge", "source": "zorblax", "target": "no such thing"},
        follow=True,
    )
    assert "no concept or vocabulary entry of that name" in unknown.content.decode()
