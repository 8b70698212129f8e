"""Browser tests: Playwright for Python driving Debian's Chromium against pytest-django's live_server."""

import os
import shutil
from pathlib import Path

import pytest
from django.test import Client

CHROMIUM = os.environ.get("CROWDDISSECT_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "browser"


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        pytest.skip(f"Chromium not found at {CHROMIUM}: apt-get install -y chromium")
    sync_api = pytest.importorskip("playwright.sync_api")
    # Playwright's sync API runs an event loop in this thread while the browser lives; Django's ORM
    # calls from these tests are safe. Allowed only for that time, so it never leaks elsewhere.
    with pytest.MonkeyPatch.context() as mp, sync_api.sync_playwright() as playwright:
        mp.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield browser
        browser.close()


@pytest.fixture
def shot():
    """shot(page, name): save a full-page screenshot under artifacts/browser/."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)

    def _shot(page, name: str) -> Path:
        path = ARTIFACTS / f"{name}.png"
        # A long page on a loaded machine takes more than the pages' 10 s default.
        page.screenshot(path=str(path), full_page=True, timeout=60_000)
        return path

    return _shot


@pytest.fixture
def page_as(browser, live_server):
    """page_as(user): a fresh browser page logged in as `user` (session cookie from Django's client)."""
    contexts = []

    def _page(user):
        client = Client()  # one per user: logging another user in would end this session
        client.force_login(user)
        context = browser.new_context(viewport={"width": 1366, "height": 860})
        context.add_cookies(
            [
                {
                    "name": "sessionid",
                    "value": client.cookies["sessionid"].value,
                    "url": live_server.url,
                }
            ]
        )
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(10_000)
        return page

    yield _page
    for context in contexts:
        context.close()
