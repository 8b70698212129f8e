"""The task page in a real Chromium: preview, accept, toggle tiles, control check, submit, leases."""

from datetime import timedelta

import pytest
from django.utils import timezone

from annotate.crowd import services
from annotate.crowd.models import Assignment
from dissect.models import UnitImage
from tests.annotate.crowd.conftest import build_run

A = Assignment.Status
pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _positions(task, kind: str) -> list[int]:
    kinds = dict(UnitImage.objects.filter(pk__in=task.tile_order).values_list("pk", "kind"))
    return [p for p, pk in enumerate(task.tile_order) if kinds[pk] == kind]


def test_label_a_unit_then_a_second_worker_and_an_expired_lease(
    live_server, page_as, make_user, shot
):
    run = build_run(units=1, tops=14, controls=3)
    campaign = services.campaign_create(
        run=run, layers=["conv5"], redundancy=2, name="Browser campaign"
    )
    campaign = services.campaign_set_status(campaign=campaign, status="live", actor=None)
    task = campaign.tasks.get()
    tops, controls = _positions(task, "top"), _positions(task, "control")

    # Worker 1: preview, accept.
    first = page_as(make_user("annotator", "ann_one"))
    first.goto(live_server.url + "/tasks/")
    shot(first, "00-home")
    first.get_by_role("link", name="Preview").click()
    first.wait_for_selector("img[alt='Image 1']")
    assert first.locator(".tile-box").first.is_disabled()
    shot(first, "01-preview")
    first.get_by_role("button", name="Accept this task").click()
    first.wait_for_url("**/tasks/assignments/**")
    assert first.locator("#lease-clock").inner_text().startswith(("19:", "20:"))

    # Mouse: mark two unit tiles, unmark one again.
    tiles = first.locator("label.tile")
    tiles.nth(tops[0]).click()
    tiles.nth(tops[1]).click()
    tiles.nth(tops[1]).click()
    boxes = first.locator(".tile-box")
    assert boxes.nth(tops[0]).is_checked() and not boxes.nth(tops[1]).is_checked()
    assert "is-flagged" in (tiles.nth(tops[0]).get_attribute("class") or "")
    # Keyboard: focus a tile, move with the arrow key, toggle with space; "2" picks "object".
    boxes.nth(tops[2] - 1 if tops[2] > 0 else 0).focus()
    if tops[2] > 0:
        first.keyboard.press("ArrowRight")
    first.keyboard.press("Space")
    assert boxes.nth(tops[2]).is_checked()
    first.keyboard.press("2")
    assert first.locator("input[name=category][value=object]").is_checked()
    first.fill("#concept", "striped cloth")
    assert "2 marked as not fitting" in first.locator("#flag-count").inner_text()
    shot(first, "02-task-marked")

    # Controls left unmarked: asked once to look again, the answer is kept on the page.
    first.get_by_role("button", name="Submit").click()
    first.wait_for_selector("#revise")
    assert first.input_value("#concept") == "striped cloth"
    assert first.locator(".tile-box").nth(tops[0]).is_checked()
    shot(first, "03-control-check")
    first.get_by_role("button", name="Submit").click()
    first.wait_for_url("**/tasks/")  # the only unit is done for this worker
    shot(first, "04-after-submit")
    saved = Assignment.objects.get(worker__user__username="ann_one")
    assert saved.status == A.SUBMITTED and saved.answer.control_failed
    assert saved.answer.revisions == 1 and saved.answer.concept_text == "striped cloth"
    assert sorted(saved.answer.flagged_tiles) == sorted(
        task.tile_order[p] for p in tops[:1] + tops[2:3]
    )

    # Worker 2 gets a different assignment of the same unit.
    second = page_as(make_user("annotator", "ann_two"))
    second.goto(live_server.url + "/tasks/")
    second.get_by_role("button", name="Start labeling").click()
    second.wait_for_url("**/tasks/assignments/**")
    leased = Assignment.objects.get(worker__user__username="ann_two")
    assert leased.task_id == task.pk and leased.pk != saved.pk

    # Worker 3 finds the task full; once worker 2's lease expires, the task is theirs.
    third = page_as(make_user("annotator", "ann_three"))
    third.goto(live_server.url + "/tasks/")
    third.get_by_role("button", name="Start labeling").click()
    third.wait_for_selector("text=no tasks left")
    Assignment.objects.filter(pk=leased.pk).update(
        lease_expires_at=timezone.now() - timedelta(seconds=1)
    )
    third.get_by_role("button", name="Start labeling").click()
    third.wait_for_url("**/tasks/assignments/**")
    assert Assignment.objects.get(worker__user__username="ann_three").task_id == task.pk

    # Worker 2 submits too late and is told so.
    for p in controls:
        second.locator("label.tile").nth(p).click()
    second.fill("#concept", "cloth")
    second.locator("input[name=category][value=material]").check()
    second.get_by_role("button", name="Submit").click()
    second.wait_for_selector("text=ran out")
    shot(second, "05-lease-expired")
    assert Assignment.objects.get(pk=leased.pk).status == A.LEASED  # not saved


def test_researcher_reviews_an_answer(live_server, page_as, make_user, shot):
    run = build_run(units=1, tops=12, controls=3)
    campaign = services.campaign_create(run=run, layers=["conv5"], name="Review campaign")
    campaign = services.campaign_set_status(campaign=campaign, status="live", actor=None)
    worker = services.worker_for_user(user=make_user("annotator", "ann_r"))
    a = services.assignment_next(worker=worker, campaign=campaign)
    services.assignment_submit(
        assignment=a, worker=worker, concept="<i>grass</i>".strip("<i>/"), category="region",
        flagged_positions=_positions(a.task, "control"),
    )  # fmt: skip
    page = page_as(make_user("researcher", "res_r"))
    page.goto(live_server.url + f"/campaigns/{campaign.pk}/")
    page.get_by_label(f"Select answer {a.pk}").check()
    page.fill("#reason", "Please name the surface")
    page.get_by_role("button", name="Reject selected").click()
    page.wait_for_selector("text=Rejected 1 answer")
    shot(page, "06-review")
    a.refresh_from_db()
    assert a.status == A.REJECTED and a.reject_reason == "Please name the surface"
