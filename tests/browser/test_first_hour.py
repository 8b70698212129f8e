"""A new user's first hour in a real Chromium: the API docs render with every other host blocked,
and the tasks page fits a 390 px phone screen."""

from urllib.parse import urlsplit

import pytest
from django.test import Client

from annotate.crowd import services
from tests.annotate.crowd.conftest import build_run

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _context(browser, live_server, user, **options):
    client = Client()
    client.force_login(user)
    context = browser.new_context(**options)
    context.add_cookies(
        [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_server.url}]
    )
    return context


def _offline(context, live_server) -> list[str]:
    """Abort every request to another host; returns the list of what was tried."""
    ours = urlsplit(live_server.url).netloc
    tried: list[str] = []

    def route(r):
        if urlsplit(r.request.url).netloc == ours:
            r.continue_()
        else:
            tried.append(r.request.url)
            r.abort()

    context.route("**/*", route)
    return tried


def test_api_docs_render_offline(browser, live_server, make_user, shot):
    context = _context(
        browser, live_server, make_user("researcher"), viewport={"width": 1280, "height": 900}
    )
    tried = _offline(context, live_server)
    page = context.new_page()
    page.set_default_timeout(20_000)
    page.goto(live_server.url + "/api/docs/")
    page.wait_for_selector(".opblock")  # Swagger UI drew the operations from our schema
    assert page.locator(".opblock").count() > 20
    assert "CrowdDissect API" in page.content()
    shot(page, "first-hour-api-docs")
    page.goto(live_server.url + "/api/redoc/")
    page.wait_for_selector("text=/api/crowd/campaigns/")  # Redoc drew the paths
    shot(page, "first-hour-api-redoc")
    assert tried == [], tried
    context.close()


def test_tasks_page_fits_a_390_px_screen(browser, live_server, make_user, shot):
    run = build_run(units=2, tops=14, controls=3)
    campaign = services.campaign_create(
        run=run, layers=["conv5"], name="A rather long campaign name"
    )
    campaign = services.campaign_set_status(campaign=campaign, status="live", actor=None)
    user = make_user("annotator", "phone_user")
    worker = services.worker_for_user(user=user)
    services.assignment_next(worker=worker, campaign=campaign)  # one open task in "My tasks"
    context = _context(
        browser, live_server, user, viewport={"width": 390, "height": 844}, is_mobile=True
    )
    page = context.new_page()
    page.goto(live_server.url + "/tasks/")
    page.wait_for_selector("table.stack")
    shot(page, "first-hour-tasks-390px")
    widths = page.evaluate(
        "() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    assert widths[0] <= widths[1], f"the page scrolls sideways: {widths}"
    # The column names travel with the cells (the header row is hidden on a phone).
    assert page.locator("td[data-label=Campaign]").first.is_visible()
    header = page.locator("table.stack thead").first.bounding_box()
    assert header is None or header["width"] <= 1  # the header row is visually hidden
    start = page.get_by_role("button", name="Start labeling")
    box = start.bounding_box()
    assert box and box["x"] >= 0 and box["x"] + box["width"] <= 390
    context.close()
