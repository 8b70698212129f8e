"""Task pages, outside-crowd protocols and researcher pages through Django's test client."""

import re
from datetime import timedelta
from urllib.parse import urlencode

import pytest
from django.urls import reverse
from django.utils import timezone

from annotate.crowd import selectors, services
from annotate.crowd.models import Assignment, Worker
from core.models import AuditEvent
from dissect.models import UnitImage

A = Assignment.Status
pytestmark = pytest.mark.django_db


@pytest.fixture
def campaign(crowd_run):
    c = services.campaign_create(
        run=crowd_run,
        layers=["conv5"],
        gold={crowd_run.layer_set.get().units.first().pk: ("secret gold", "scene")},
    )
    return services.campaign_set_status(campaign=c, status="live", actor=None)


@pytest.fixture
def annotator(client, make_user):
    user = make_user("annotator")
    client.force_login(user)
    return user


def _controls(assignment) -> list[int]:
    kinds = dict(
        UnitImage.objects.filter(pk__in=assignment.task.tile_order).values_list("pk", "kind")
    )
    return [p for p, pk in enumerate(assignment.task.tile_order) if kinds[pk] == "control"]


def _start(client, campaign) -> Assignment:
    response = client.post(reverse("crowd:task-start", args=[campaign.pk]))
    assert response.status_code == 302
    return Assignment.objects.get(
        pk=int(re.search(r"/assignments/(\d+)/", response["Location"])[1])
    )


def test_preview_accept_and_submit_a_task(client, annotator, campaign):
    home = client.get(reverse("crowd:annotator-home"))
    assert campaign.name in home.content.decode()
    preview = client.get(reverse("crowd:task-preview", args=[campaign.pk]))
    html = preview.content.decode()
    assert preview.status_code == 200 and "Accept this task" in html and " disabled" in html
    assert not Assignment.objects.exists()  # preview leases nothing
    task_id = int(re.search(r"/tasks/(\d+)/accept/", html)[1])
    accepted = client.post(reverse("crowd:task-accept", args=[task_id]))
    assignment = Assignment.objects.get(task_id=task_id)
    assert accepted["Location"] == reverse("crowd:task", args=[assignment.pk])
    page = client.get(accepted["Location"]).content.decode()
    assert page.count('class="tile-box"') == len(assignment.task.tile_order)
    assert '<option value="tree">' in page  # autocomplete from the vocabulary
    # Pretend the worker took a minute (active time is capped at the time since accepting).
    Assignment.objects.filter(pk=assignment.pk).update(
        accepted_at=timezone.now() - timedelta(minutes=1)
    )
    submitted = client.post(
        accepted["Location"],
        {
            "concept": "tree",
            "category": "object",
            "flagged": _controls(assignment),
            "active_seconds": "12.5",
        },
    )
    assert submitted.status_code == 302
    assignment.refresh_from_db()
    assert assignment.status == A.SUBMITTED and assignment.active_seconds == pytest.approx(
        12.5, abs=0.01
    )
    assert assignment.answer.concept_text == "tree" and not assignment.answer.control_failed
    # The next task is leased right away.
    assert Assignment.objects.filter(worker=assignment.worker, status=A.LEASED).count() == 1


def test_the_task_page_hides_controls_gold_and_file_names(client, annotator, campaign):
    for _ in range(2):  # one ordinary task and, after returning it, the next (gold or not)
        a = _start(client, campaign)
        html = client.get(reverse("crowd:task", args=[a.pk])).content.decode()
        assert "control" not in html.lower() and "secret gold" not in html
        for tile_path in UnitImage.objects.filter(pk__in=a.task.tile_order).values_list(
            "tile_path", flat=True
        ):
            assert tile_path not in html
        for pk in a.task.tile_order:
            assert f'value="{pk}"' not in html
        tile_url = re.search(r'src="(/tasks/tile/[^"]+)"', html)[1]
        tile = client.get(tile_url)
        assert tile.status_code == 200 and b"".join(tile.streaming_content)[:4] == b"\x89PNG"
        client.post(reverse("crowd:task-return", args=[a.pk]))
    assert client.get("/tasks/tile/forged:token/").status_code == 404


def test_control_check_validation_and_escaping(client, annotator, campaign):
    a = _start(client, campaign)
    url = reverse("crowd:task", args=[a.pk])
    bad = client.post(url, {"concept": '"><script>alert(1)</script>', "category": ""})
    html = bad.content.decode()
    assert bad.status_code == 400
    assert "Concept: use only letters" in html and "Category: pick one of" in html
    assert "<script>alert(1)" not in html and "&lt;script&gt;" in html
    revise = client.post(url, {"concept": "dog", "category": "object", "flagged": []})
    assert revise.status_code == 200 and "Please look again" in revise.content.decode()
    again = client.post(url, {"concept": "dog", "category": "object", "flagged": [0]})
    assert again.status_code == 302
    a.refresh_from_db()
    assert a.answer.revisions == 1
    assert a.answer.control_failed == (set(_controls(a)) != {0})


def test_other_peoples_tasks_and_expired_leases_are_refused(client, make_user, annotator, campaign):
    a = _start(client, campaign)
    other = make_user("annotator")
    client.force_login(other)
    assert client.get(reverse("crowd:task", args=[a.pk])).status_code == 404
    assert client.post(reverse("crowd:task", args=[a.pk]), {"concept": "x"}).status_code == 404
    client.force_login(annotator)
    Assignment.objects.filter(pk=a.pk).update(
        lease_expires_at=timezone.now() - timedelta(seconds=1)
    )
    late = client.post(
        reverse("crowd:task", args=[a.pk]),
        {"concept": "x", "category": "object", "flagged": _controls(a)},
    )
    assert late.status_code == 409 and "ran out" in late.content.decode()
    reopened = client.get(reverse("crowd:task", args=[a.pk]), follow=True)
    assert "ran out" in reopened.content.decode()


def test_submissions_are_rate_limited(client, annotator, campaign, settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"submit": "2/min"},
    }
    a = _start(client, campaign)
    url = reverse("crowd:task", args=[a.pk])
    codes = [client.post(url, {"concept": "", "category": ""}).status_code for _ in range(3)]
    assert codes == [400, 400, 429]


def test_mechanical_turk_external_question_round_trip(client, campaign):
    entry = reverse("crowd:mturk-entry", args=[campaign.pk])
    preview = client.get(
        entry + "?" + urlencode({"assignmentId": "ASSIGNMENT_ID_NOT_AVAILABLE", "hitId": "H1"})
    )
    assert preview.status_code == 200 and "Accept the HIT" in preview.content.decode()
    assert not Assignment.objects.exists()
    params = {
        "assignmentId": "MT-A1",
        "hitId": "H1",
        "workerId": "AWORKER",
        "turkSubmitTo": "https://workersandbox.mturk.com",
    }
    opened = client.get(entry + "?" + urlencode(params))
    assert opened.status_code == 302
    # The same assignment again (compare what the signed token names: it carries a timestamp).
    again = client.get(entry + "?" + urlencode(params))["Location"]
    assert selectors.assignment_from_token(token=again.split("/")[-2]) == (
        selectors.assignment_from_token(token=opened["Location"].split("/")[-2])
    )
    assignment = Assignment.objects.get(external_assignment_id="MT-A1")
    assert (
        assignment.worker.source == Worker.Source.MTURK
        and assignment.worker.external_id == "AWORKER"
    )
    client.cookies.clear()  # inside the panel's frame our cookies are not sent
    done = client.post(
        opened["Location"],
        {"concept": "sky", "category": "region", "flagged": _controls(assignment)},
    )
    html = done.content.decode()
    assert 'action="https://workersandbox.mturk.com/mturk/externalSubmit"' in html
    assert 'name="assignmentId" value="MT-A1"' in html
    assignment.refresh_from_db()
    assert assignment.status == A.SUBMITTED


def test_link_out_mode_shows_a_completion_code(client, campaign):
    opened = client.get(
        reverse("crowd:link-entry", args=[campaign.pk]) + "?PROLIFIC_PID=p123&SESSION_ID=s9"
    )
    a = Assignment.objects.get(worker__external_id="p123")
    done = client.post(
        opened["Location"],
        {"concept": "sky", "category": "region", "flagged": _controls(a)},
        follow=True,  # the session's next step, then its completion page
    )
    a.refresh_from_db()
    assert a.completion_code and a.completion_code in done.content.decode()


def test_researcher_reviews_in_bulk_and_the_worker_sees_the_reason(client, make_user, campaign):
    workers = []
    for _ in range(2):
        user = make_user("annotator")
        client.force_login(user)
        a = _start(client, campaign)
        client.post(
            reverse("crowd:task", args=[a.pk]),
            {"concept": "tree", "category": "object", "flagged": _controls(a)},
        )
        workers.append((user, a))
    researcher = make_user("researcher")
    client.force_login(researcher)
    detail = client.get(reverse("crowd:campaign-detail", args=[campaign.pk])).content.decode()
    assert "Pending review (2)" in detail
    assert client.get(reverse("crowd:campaign-list")).status_code == 200
    ids = [a.pk for _, a in workers]
    client.post(
        reverse("crowd:campaign-review", args=[campaign.pk]),
        {"assignment": ids, "decision": "reject", "reason": ""},
    )
    assert (
        Assignment.objects.filter(pk__in=ids, status=A.SUBMITTED).count() == 2
    )  # a reason is required
    client.post(
        reverse("crowd:campaign-review", args=[campaign.pk]),
        {"assignment": ids, "decision": "reject", "reason": "Please <b>look</b> closer"},
    )
    assert Assignment.objects.filter(pk__in=ids, status=A.REJECTED).count() == 2
    worker = workers[0][1].worker
    client.post(
        reverse("crowd:worker-block", args=[worker.pk]),
        {"reason": "careless", "next": "https://evil.example/"},
    )
    worker.refresh_from_db()
    assert worker.blocked and AuditEvent.objects.filter(action="worker.block").count() == 1
    client.force_login(workers[0][0])
    home = client.get(reverse("crowd:annotator-home")).content.decode()
    assert "Please &lt;b&gt;look&lt;/b&gt; closer" in home
    blocked = client.post(
        reverse("crowd:task-start", args=[campaign.pk]), follow=True
    ).content.decode()
    assert "blocked" in blocked


def test_researcher_creates_a_campaign_from_the_form(client, make_user, crowd_run):
    client.force_login(make_user("researcher"))
    unit = crowd_run.layer_set.get().units.get(index=1)
    form = {
        "run": crowd_run.pk, "layers": "conv5", "tiles_per_task": 60, "controls_per_task": 3, "redundancy": 3,
        "lease_minutes": 20, "reward_cents": 5, "gold_rate": 0.1, "gold": "conv5#1, car, object",
        "min_gold_accuracy": 0.5, "auto_approve_hours": 72, "seed": 3, "instructions": "Be careful.",
    }  # fmt: skip
    bad = client.post(reverse("crowd:campaign-new"), {**form, "gold": "conv5#99, car, object"})
    assert "no unit conv5#99" in bad.content.decode()
    created = client.post(reverse("crowd:campaign-new"), form)
    assert created.status_code == 302
    task = unit.tasks.get()
    assert task.is_gold and task.gold_concept == "car" and task.campaign.reward_cents == 5


def test_skip_says_what_happened(client, annotator, campaign):
    first = _start(client, campaign)
    skipped = client.post(reverse("crowd:task-skip", args=[first.pk]), follow=True)
    page = skipped.content.decode()
    assert "Skipped: that unit goes to other workers" in page
    following = skipped.redirect_chain[-1][0]
    assert (
        following != reverse("crowd:task", args=[first.pk]) and "/tasks/assignments/" in following
    )


def test_the_tasks_page_fits_a_phone(client, annotator, campaign):
    """Each cell of the tasks tables carries its column's name, for the 390 px card layout."""
    _start(client, campaign)
    page = client.get(reverse("crowd:annotator-home")).content.decode()
    assert page.count('<table class="stack">') == 2
    for label in ("Campaign", "Network", "Reward", "Task", "Status", "Accepted"):
        assert f'data-label="{label}"' in page


def test_campaign_page_says_how_many_tiles_workers_really_see(client, make_user, campaign):
    # The run keeps 14 top images per unit (conftest build_run) and the campaign asks for 60:
    # every task shows 14 unit tiles + 3 controls, and the page must say 17, not 60.
    sizes = {len(t.tile_order) for t in campaign.tasks.all()}
    assert sizes == {17}
    client.force_login(make_user("researcher"))
    detail = client.get(reverse("crowd:campaign-detail", args=[campaign.pk])).content.decode()
    assert "17 tiles per task (3 controls; 60 asked for, the run keeps fewer top images)" in detail
    assert "60 tiles per task" not in detail
