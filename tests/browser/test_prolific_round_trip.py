"""A Prolific study session in a real Chromium: the study link, two tasks, then the redirect to
Prolific's completion URL (intercepted in the browser: nothing leaves the machine)."""

import pytest

from annotate.crowd import services
from annotate.crowd.models import Assignment, StudySession
from dissect.models import UnitImage
from tests.annotate.crowd.conftest import build_run

A = Assignment.Status
COMPLETE = "https://app.prolific.com/submissions/complete?cc=BROWSER1"
pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_participant_answers_the_session_and_lands_on_the_completion_url(
    browser, live_server, shot
):
    run = build_run(units=2, tops=10, controls=1)
    campaign = services.campaign_create(
        run=run, layers=["conv5"], redundancy=1, controls_per_task=1, tasks_per_session=2,
        completion_url=COMPLETE, name="Prolific study",
    )  # fmt: skip
    campaign = services.campaign_set_status(campaign=campaign, status="live", actor=None)
    context = browser.new_context(viewport={"width": 390, "height": 844})
    page = context.new_page()
    reached = []

    def prolific(route):
        reached.append(route.request.url)
        route.fulfill(status=200, content_type="text/html", body="<h1>Prolific (stub)</h1>")

    page.route("https://app.prolific.com/**", prolific)
    page.goto(
        f"{live_server.url}/tasks/link/{campaign.pk}/"
        "?PROLIFIC_PID=pid-b1&STUDY_ID=study-b&SESSION_ID=sess-b1"
    )
    for step in range(2):
        page.wait_for_url("**/tasks/external/**")
        page.wait_for_selector("img[alt='Image 1']")
        token = page.url.rstrip("/").rsplit("/", 1)[-1]
        from annotate.crowd.selectors import assignment_from_token

        task = assignment_from_token(token=token).task
        kinds = dict(UnitImage.objects.filter(pk__in=task.tile_order).values_list("pk", "kind"))
        tiles = page.locator("label.tile")
        for p, pk in enumerate(task.tile_order):
            if kinds[pk] == "control":
                tiles.nth(p).click()
        page.fill("#concept", "tree")
        page.keyboard.press("Escape")
        page.locator("input[name=category][value=object]").check()
        shot(page, f"prolific-0{step}-task")
        page.get_by_role("button", name="Submit").click()
    page.wait_for_url(COMPLETE)
    assert reached == [COMPLETE]
    session = StudySession.objects.get()
    assert session.completed_at is not None
    assert list(session.assignments.values_list("status", flat=True)) == [A.SUBMITTED] * 2
    context.close()
