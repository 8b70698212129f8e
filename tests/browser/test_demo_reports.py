"""Issue 14: after `manage.py demo`, a researcher opening the reports in the real browser sees
detectors per layer (the simulated crowd's labels), the Fig. 10 concepts and agreement, each page
saying that simulated workers gave the answers where it shows them; screenshots kept. The demo
runs once per session (``demo_snapshot``, tests/conftest.py); ``demo_world`` restores what it
stored for this test alone."""

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_the_demo_reports_show_detectors_in_the_browser(demo_world, live_server, page_as, shot):
    # What `manage.py demo --images 24 --top-k 12` stored (demo_world).
    researcher = get_user_model().objects.get(username="demo-researcher")
    page = page_as(researcher)

    page.goto(live_server.url + reverse("labels:detectors", args=["demo-places"]))
    chart = page.locator("figure.chart svg")
    chart.wait_for()
    assert page.locator("p.empty-state").count() == 0  # not the "no labels yet" state
    # The run picker names the demo's dissection run, not an imported one.
    assert "demo-places" in page.locator("main").inner_text()
    table = page.locator("table").first.inner_text()
    assert "conv5" in table and "pool5" in table
    # Every report page over the run says its crowd labels come from simulated workers.
    assert "SIMULATED workers" in page.locator("p.message.simulated").inner_text()
    shot(page, "demo-detectors")

    page.goto(live_server.url + reverse("labels:concept-detectors", args=["demo-places"]))
    page.locator("figure.chart svg").wait_for()
    assert page.locator("p.empty-state").count() == 0
    shot(page, "demo-concepts-fig10")

    # The campaign the simulated crowd answered says so in a banner.
    from annotate.crowd.models import Campaign

    simulated = Campaign.objects.get(run__network__name="demo-places", run__status="done")
    page.goto(live_server.url + reverse("crowd:campaign-detail", args=[simulated.pk]))
    banner = page.locator("p.message.simulated")
    banner.wait_for()
    assert "SIMULATED" in banner.inner_text()
    shot(page, "demo-simulated-banner")
