"""The role x action table walked cell by cell, and the REST API."""

import pytest
from django.urls import reverse
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from annotate.crowd import services
from annotate.crowd.models import Assignment, Worker
from core.access import PERMISSIONS, can
from core.roles import ROLES
from dissect.models import UnitImage

pytestmark = pytest.mark.django_db


@pytest.fixture
def campaign(crowd_run):
    c = services.campaign_create(run=crowd_run, layers=["conv5"])
    return services.campaign_set_status(campaign=c, status="live", actor=None)


def _controls(task) -> list[int]:
    kinds = dict(UnitImage.objects.filter(pk__in=task.tile_order).values_list("pk", "kind"))
    return [p for p, pk in enumerate(task.tile_order) if kinds[pk] == "control"]


def _requests(campaign):
    """action -> requests that need exactly that action: (client kind, method, url, data)."""
    worker = Worker.objects.create(pseudonym="target")
    return {
        "task.work": [("html", "get", reverse("crowd:annotator-home"), None),
                      ("api", "get", "/api/crowd/assignments/", None)],
        "campaign.view": [("html", "get", reverse("crowd:campaign-list"), None),
                          ("html", "get", reverse("crowd:campaign-detail", args=[campaign.pk]), None),
                          ("api", "get", "/api/crowd/campaigns/", None),
                          ("api", "get", f"/api/crowd/tasks/?campaign={campaign.pk}", None)],
        "campaign.create": [("html", "get", reverse("crowd:campaign-new"), None),
                            ("api", "post", "/api/crowd/campaigns/", {"run": campaign.run_id, "layers": ["nope"]})],
        "campaign.status": [("html", "post", reverse("crowd:campaign-status", args=[campaign.pk]), {"status": "bogus"}),
                            ("api", "post", f"/api/crowd/campaigns/{campaign.pk}/status/", {"status": "draft"})],
        "assignment.review": [("html", "post", reverse("crowd:campaign-review", args=[campaign.pk]), {}),
                              ("api", "post", "/api/crowd/assignments/review/", {"assignments": [0], "decision": "approve"})],
        "answer.view_all": [("api", "get", "/api/crowd/answers/", None)],
        "worker.block": [("html", "post", reverse("crowd:worker-block", args=[worker.pk]), {"reason": ""})],
        "run.view": [("html", "get", reverse("dissect:run-list"), None),
                     ("html", "get", reverse("dissect:run-detail", args=[campaign.run_id]), None),
                     ("api", "get", "/api/dissect/runs/", None),
                     ("api", "get", f"/api/dissect/units/?run={campaign.run_id}", None)],
        "run.create": [("html", "get", reverse("dissect:run-create"), None),
                       ("api", "post", "/api/dissect/runs/", {"layers": []})],
        # The run is done: allowed roles get 409 (a conflict), never 403.
        "run.control": [("html", "post", reverse("dissect:run-cancel", args=[campaign.run_id]), {}),
                        ("api", "post", f"/api/dissect/runs/{campaign.run_id}/cancel/", None)],
        "report.view": [("html", "get", reverse("labels:index"), None),
                        ("api", "get", "/api/labels/unit-labels/", None)],
        "labels.recompute": [("html", "post", reverse("labels:recompute"), {"run": "0"})],
        "concept.merge": [("html", "get", reverse("labels:concepts"), None)],
        "export.create": [("html", "get", reverse("labels:exports"), None)],
        "export.download": [("html", "get", reverse("labels:export-download", args=[10**6]), None)],
        "explain.use": [("html", "get", reverse("explain:page"), None),
                        ("api", "post", "/api/explain/", {})],
    }  # fmt: skip


def _staff_without_role(django_user_model):
    """A staff user in no group: counted as a researcher everywhere (core.access)."""
    return django_user_model.objects.create_user("staffer", password="pw", is_staff=True)


def test_the_permission_table_walked_for_every_role_and_action(
    client, make_user, campaign, django_user_model
):
    """Every action of every app, through its pages and its API, for each role and for a staff
    user without a role (treated as a researcher)."""
    requests = _requests(campaign)
    assert set(requests) == set(PERMISSIONS), "every action in the table needs a request here"
    users = [(role, make_user(role)) for role in ROLES]
    users.append(("researcher", _staff_without_role(django_user_model)))
    for role, user in users:
        client.force_login(user)
        api = APIClient()
        api.force_authenticate(user)
        for action, allowed in PERMISSIONS.items():
            assert can(user, action) == (role in allowed)
            for kind, method, url, data in requests[action]:
                if kind == "html":
                    response = getattr(client, method)(url, data or {})
                else:
                    response = getattr(api, method)(url, data, format="json")
                denied = response.status_code == 403
                assert denied == (role not in allowed), (role, action, url, response.status_code)
    client.logout()
    for action, cells in requests.items():  # anonymous: pages send to the login page
        for kind, method, url, data in cells:
            if kind == "html":
                response = getattr(client, method)(url, data or {})
                assert response.status_code == 302 and "/accounts/login/" in response["Location"]
            else:
                response = getattr(APIClient(), method)(url, data, format="json")
                assert response.status_code in (401, 403), (action, url)


def test_api_lease_submit_and_review_with_token_auth(make_user, campaign):
    annotator, researcher = make_user("annotator"), make_user("researcher")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=annotator).key}")
    task = api.post("/api/crowd/assignments/next/", {"campaign": campaign.pk}, format="json")
    assert task.status_code == 200
    body = task.json()
    assert len(body["tiles"]) == len(Assignment.objects.get(pk=body["id"]).task.tile_order)
    assert set(body["tiles"][0]) == {"position", "url"} and "control" not in str(body).lower()
    task = Assignment.objects.get(pk=body["id"]).task
    url = f"/api/crowd/assignments/{body['id']}/submit/"
    invalid = api.post(url, {"concept": "", "category": "nope", "flagged": []}, format="json")
    assert (
        invalid.status_code == 400 and "concept" in invalid.json() and "category" in invalid.json()
    )
    revise = api.post(url, {"concept": "lamp", "category": "object", "flagged": []}, format="json")
    assert (
        revise.status_code == 200
        and revise.json()["status"] == "leased"
        and revise.json()["revise"]
    )
    saved = api.post(
        url, {"concept": "lamp", "category": "object", "flagged": _controls(task)}, format="json"
    )
    assert saved.status_code == 200 and saved.json()["status"] == "submitted"
    assert saved.json()["answer"]["flagged"] == sorted(_controls(task))
    # An annotator sees only their own assignments and never the responses list.
    other = make_user("annotator")
    other_api = APIClient()
    other_api.force_authenticate(other)
    assert other_api.get("/api/crowd/assignments/").json()["count"] == 0
    assert other_api.get(f"/api/crowd/assignments/{body['id']}/").status_code == 404
    assert (
        other_api.post(url, {"concept": "x", "category": "object"}, format="json").status_code
        == 404
    )
    assert api.get("/api/crowd/answers/").status_code == 403
    review = APIClient()
    review.force_authenticate(researcher)
    listed = review.get(f"/api/crowd/answers/?campaign={campaign.pk}").json()
    assert listed["count"] == 1 and listed["results"][0]["control_failed"] is False
    rejected = review.post(
        "/api/crowd/assignments/review/",
        {"assignments": [body["id"]], "decision": "reject", "reason": "wrong concept"},
        format="json",
    )
    assert rejected.status_code == 200 and rejected.json()[0]["status"] == "rejected"
    assert (
        api.get(f"/api/crowd/assignments/{body['id']}/").json()["reject_reason"] == "wrong concept"
    )


def test_api_creates_and_starts_a_campaign(make_user, crowd_run):
    api = APIClient()
    api.force_authenticate(make_user("researcher"))
    unit = crowd_run.layer_set.get().units.first()
    created = api.post(
        "/api/crowd/campaigns/",
        {"run": crowd_run.pk, "layers": ["conv5"], "redundancy": 2, "gold_rate": 0.2,
         "gold": [{"unit": unit.pk, "concept": "car", "category": "object"}]},
        format="json",
    )  # fmt: skip
    assert created.status_code == 201, created.content
    pk = created.json()["id"]
    assert created.json()["progress"][0]["units"] == 2  # the gold unit is not counted as work
    assert created.json()["fill_order"] == "complete"  # the default: finish units first
    spread = api.post(
        "/api/crowd/campaigns/",
        {"run": crowd_run.pk, "layers": ["conv5"], "fill_order": "spread"},
        format="json",
    )
    assert spread.status_code == 201 and spread.json()["fill_order"] == "spread"
    bad = api.post(
        "/api/crowd/campaigns/",
        {"run": crowd_run.pk, "layers": ["conv5"], "fill_order": "random"},
        format="json",
    )
    assert bad.status_code == 400 and "fill_order" in str(bad.json())
    live = api.post(f"/api/crowd/campaigns/{pk}/status/", {"status": "live"}, format="json")
    assert live.json()["status"] == "live"
    tasks = api.get(f"/api/crowd/tasks/?campaign={pk}").json()["results"]
    assert [t["is_gold"] for t in tasks].count(True) == 1 and tasks[0]["tile_count"] == 17
    assert {t["answers"] for t in tasks} == {0}
    wrong = api.post(f"/api/crowd/campaigns/{pk}/status/", {"status": "draft"}, format="json")
    assert wrong.status_code == 400 and "live campaign can move to" in str(wrong.json())


def test_schema_lists_the_crowd_endpoints(client, make_user):
    client.force_login(make_user("admin"))
    schema = client.get("/api/schema/").content.decode()
    for path in (
        "/api/crowd/campaigns/",
        "/api/crowd/assignments/{id}/submit/",
        "/api/crowd/answers/",
    ):
        assert path in schema


def test_the_documented_token_recipe_works(make_user, client):
    """docs/crowd.md: `manage.py drf_create_token NAME`, then `Authorization: Token KEY`."""
    from io import StringIO

    from django.core.management import call_command

    make_user("researcher", username="alice")
    out = StringIO()
    call_command("drf_create_token", "alice", stdout=out)
    key = out.getvalue().split()[2]
    listed = client.get("/api/crowd/campaigns/", HTTP_AUTHORIZATION=f"Token {key}")
    assert listed.status_code == 200
    assert client.get("/api/crowd/campaigns/").status_code in (401, 403)  # no token: refused
