"""The Prolific round trip: entry with PROLIFIC_PID / STUDY_ID / SESSION_ID, tasks of one session,
the completion redirect (only after the answers are stored), forged sessions refused, and the
per-study approve/reject export keyed by session id. Nothing here calls an outside service."""

import csv
import io

import pytest
from django.urls import reverse

from annotate.crowd import selectors, services
from annotate.crowd.models import Assignment, StudySession
from dissect.models import UnitImage
from tests.annotate.crowd.conftest import build_run

A = Assignment.Status
COMPLETE = "https://app.prolific.com/submissions/complete?cc=C0DE42"
pytestmark = pytest.mark.django_db


def _campaign(**parameters):
    run = build_run(units=4, tops=10, controls=1)
    campaign = services.campaign_create(
        run=run, layers=["conv5"], controls_per_task=1, redundancy=1, **parameters
    )
    return services.campaign_set_status(campaign=campaign, status="live", actor=None)


def _entry(campaign, pid="pid-1", session="sess-1", study="study-1"):
    query = f"?PROLIFIC_PID={pid}&STUDY_ID={study}&SESSION_ID={session}"
    return reverse("crowd:link-entry", args=[campaign.pk]) + query


def _answer(client, task_url):
    token = task_url.rstrip("/").rsplit("/", 1)[-1]
    a = selectors.assignment_from_token(token=token)
    kinds = dict(UnitImage.objects.filter(pk__in=a.task.tile_order).values_list("pk", "kind"))
    controls = [p for p, pk in enumerate(a.task.tile_order) if kinds[pk] == "control"]
    return client.post(task_url, {"concept": "tree", "category": "object", "flagged": controls})


def test_a_session_answers_its_tasks_then_goes_to_the_completion_url(client):
    campaign = _campaign(completion_url=COMPLETE, tasks_per_session=2)
    opened = client.get(_entry(campaign))
    assert opened.status_code == 302 and "/tasks/external/" in opened["Location"]
    session = StudySession.objects.get()
    assert (session.session_id, session.study_id, session.worker.external_id) == (
        "sess-1",
        "study-1",
        "pid-1",
    )
    # The completion is refused while the first answer is not stored.
    complete = reverse(
        "crowd:study-complete", args=[selectors.session_token(session_pk=session.pk)]
    )
    early = client.get(complete)
    assert early.status_code == 409 and "not stored yet" in early.content.decode()
    assert COMPLETE not in early.content.decode()
    # First answer: on to the session's second task.
    second = client.get(_answer(client, opened["Location"])["Location"])
    assert second.status_code == 302 and "/tasks/external/" in second["Location"]
    assert client.get(complete).status_code == 409  # one of two stored: still refused
    # Second answer: to Prolific with the study's completion code.
    done = client.get(_answer(client, second["Location"])["Location"])
    assert done.status_code == 302
    final = client.get(done["Location"])
    assert final.status_code == 302 and final["Location"] == COMPLETE
    session.refresh_from_db()
    assert session.completed_at is not None
    assert list(session.assignments.values_list("status", flat=True)) == [A.SUBMITTED] * 2
    # Coming back through the study link again completes again, without a new task.
    again = client.get(_entry(campaign))
    assert client.get(again["Location"])["Location"] == COMPLETE
    assert Assignment.objects.count() == 2


def test_without_a_completion_url_the_study_code_is_shown_after_the_answer(client):
    campaign = _campaign(completion_code="STUDY77")
    opened = client.get(_entry(campaign))
    page = client.get(_answer(client, opened["Location"])["Location"], follow=True)
    assert page.status_code == 200 and "STUDY77" in page.content.decode()


def test_forged_or_borrowed_sessions_are_refused(client):
    campaign = _campaign(completion_url=COMPLETE)
    opened = client.get(_entry(campaign))
    _answer(client, opened["Location"])
    session = StudySession.objects.get()
    # Another participant presenting this SESSION_ID gets nothing.
    borrowed = client.get(_entry(campaign, pid="pid-2"))
    assert borrowed.status_code == 409
    assert "belongs to another participant" in borrowed.content.decode()
    # The same session under another study: refused.
    assert client.get(_entry(campaign, study="study-9")).status_code == 409
    # A changed completion token: refused, nothing completed.
    token = selectors.session_token(session_pk=session.pk)
    forged = client.get(reverse("crowd:study-complete", args=[token[:-2] + "xx"]))
    assert forged.status_code == 400 and "not valid" in forged.content.decode()
    session.refresh_from_db()
    assert session.completed_at is None
    assert StudySession.objects.count() == 1 and Assignment.objects.count() == 1


def test_the_decisions_export_is_keyed_by_session_id(client, make_user):
    campaign = _campaign()
    for i in range(3):
        opened = client.get(_entry(campaign, pid=f"p{i}", session=f"S{i}"))
        _answer(client, opened["Location"])
    open_session = client.get(_entry(campaign, pid="p9", session="S9"))  # leased, never answered
    assert open_session.status_code == 302
    by_pid = {a.worker.external_id: a for a in Assignment.objects.select_related("worker")}
    services.assignment_review(assignment_ids=[by_pid["p0"].pk], approve=True, actor=None)
    services.assignment_review(
        assignment_ids=[by_pid["p1"].pk], approve=False, actor=None, reason="=random words"
    )
    client.force_login(make_user("researcher"))
    response = client.get(reverse("crowd:study-decisions", args=[campaign.pk]) + "?study=study-1")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    decided = {r["submission_id"]: r for r in rows}
    assert set(decided) == {"S0", "S1", "S2"}  # S9 stored nothing: nothing to decide
    assert (decided["S0"]["action"], decided["S0"]["participant_id"]) == ("APPROVE", "p0")
    assert decided["S1"]["action"] == "REJECT"
    assert decided["S1"]["rejection_category"] == "OTHER"
    message = decided["S1"]["message"]
    assert message.startswith("'=random words. 1 of your 1 answer(s)")  # formula-safe cell
    assert len(message) >= 100  # Prolific refuses shorter rejection messages
    assert decided["S2"]["action"] == "" and decided["S2"]["awaiting_review"] == "1"
    other = client.get(reverse("crowd:study-decisions", args=[campaign.pk]) + "?study=nope")
    assert list(csv.DictReader(io.StringIO(other.content.decode()))) == []
    client.logout()
    assert client.get(reverse("crowd:study-decisions", args=[campaign.pk])).status_code == 302


def test_a_rejection_message_is_long_enough_for_prolific_even_without_a_reason():
    from annotate.crowd.selectors import PROLIFIC_MESSAGE_MIN_CHARS, rejection_message

    for reasons in ("", "x", "Named the wrong object."):
        text = rejection_message(reasons, rejected=2, answers=5)
        assert len(text) >= PROLIFIC_MESSAGE_MIN_CHARS and "2 of your 5 answer(s)" in text
        assert text.startswith(reasons.rstrip(".") or "Your answers did not follow")
