"""The verification page in a real Chromium, keyboard only (issue 16): start from the annotator
home with Enter, answer with y / n / c and with Tab + Enter, finish the unit and move on; and the
page on a phone-sized screen."""

import pytest

from annotate.crowd.models import VerificationAnswer, VerificationAssignment
from tests.annotate.crowd.test_verification import build_verification_campaign

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_answer_a_unit_with_the_keyboard_only(live_server, page_as, make_user, tmp_path, shot):
    campaign = build_verification_campaign(tmp_path, images=5, checks=1, redundancy=1)
    page = page_as(make_user("annotator", "verifier"))
    page.goto(live_server.url + "/tasks/")
    page.locator(f"#verify-start-{campaign.pk}").focus()
    page.keyboard.press("Enter")
    page.wait_for_url("**/tasks/verify/**")
    assignment = VerificationAssignment.objects.get()
    total = assignment.task.items.count()
    assert page.locator(".verify-count").inner_text().startswith(f"Image 1 of {total}")
    assert page.locator("#answer-yes").evaluate("b => b === document.activeElement")
    shot(page, "verify-00-first")

    keys = ["y", "n", "c"]
    for number, key in enumerate(keys, start=1):
        page.keyboard.press(key)
        page.wait_for_selector(f".verify-count:has-text('Image {number + 1} of')")
    # Tab from the focused Yes to No, Enter answers No.
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    page.wait_for_selector(f".verify-count:has-text('Image {len(keys) + 2} of')")
    for number in range(len(keys) + 2, total + 1):
        page.keyboard.press("y")
        if number < total:
            page.wait_for_selector(f".verify-count:has-text('Image {number + 1} of')")
    # The unit is done: the next unit's first image.
    page.wait_for_function(
        "() => document.querySelector('.verify-count')?.textContent.includes('Image 1 of')"
    )
    answers = list(
        VerificationAnswer.objects.filter(assignment=assignment)
        .order_by("item__position")
        .values_list("answer", flat=True)
    )
    assert answers == ["yes", "no", "cant", "no"] + ["yes"] * (total - 4)
    assignment.refresh_from_db()
    assert assignment.status == "submitted"
    assert VerificationAssignment.objects.filter(worker=assignment.worker).count() == 2
    shot(page, "verify-01-next-unit")


def test_the_page_fits_a_phone(browser, live_server, make_user, tmp_path, page_as, shot):
    campaign = build_verification_campaign(tmp_path, images=5, checks=0, redundancy=1)
    page = page_as(make_user("annotator", "phone"))
    page.set_viewport_size({"width": 390, "height": 760})
    page.goto(live_server.url + "/tasks/")
    page.locator(f"#verify-start-{campaign.pk}").click()
    page.wait_for_url("**/tasks/verify/**")
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
    for name in ("yes", "no", "cant"):
        box = page.locator(f"#answer-{name}").bounding_box()
        assert box["height"] >= 44 and box["x"] >= 0 and box["x"] + box["width"] <= 390
    shot(page, "verify-02-phone")
