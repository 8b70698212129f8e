"""A new user's first hour, the rest of it, in a real Chromium (screenshots under artifacts/):
a small image set adapts top-K or is refused with the numbers; the report pages' run picker works
with the keyboard; the review page shows the tiles a worker marked and keeps the ticks on an
error; a refused page is the site's styled 403."""

import re

import numpy as np
import pytest
from django.test import Client
from django.urls import reverse
from PIL import Image

from annotate.crowd import services
from annotate.crowd.models import Assignment
from dissect.models import DissectionRun, Layer, Unit, UnitImage
from tests.annotate.crowd.conftest import build_run

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _images(folder, n: int):
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        pixels = rng.integers(0, 255, (48, 48, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"img{i:02d}.png")
    return folder


@pytest.mark.slow
def test_a_small_image_set_is_refused_with_numbers_or_adapts_top_k(
    page_as, live_server, make_user, tmp_path, shot
):
    from dissect.services import image_set_scan
    from dissect.services.networks import network_by_name

    network_by_name("demo-places")
    image_set_scan(name="my-photos", root=_images(tmp_path / "photos", 30))
    page = page_as(make_user("researcher"))
    page.set_default_timeout(60_000)
    page.goto(live_server.url + reverse("dissect:run-create"))
    page.select_option("#id_network", "demo-places")
    page.select_option("#id_image_set", "my-photos")
    page.fill("#id_layers", "conv5")
    page.fill("#id_top_k", "60")
    page.click("#run-form button[type=submit]")
    error = page.locator(".errorlist").first
    error.wait_for()
    text = error.inner_text()
    assert (
        "30 usable images" in text
        and "top-60 + 3 controls" in text
        and "top-K 10, what leaving it out picks" in text
    )
    assert not DissectionRun.objects.exists()
    shot(page, "first-hour-small-set-refused")

    page.fill("#id_top_k", "")  # left out: adapted to the set
    page.fill("#id_tile_px", "24")  # small tiles: the (eager) run renders inside the request
    page.set_default_timeout(240_000)
    page.click("#run-form button[type=submit]")
    page.wait_for_url(re.compile(r"/runs/\d+/$"))
    note = page.locator("p.message.warning", has_text="top-K adapted").first
    note.wait_for()
    assert "30 usable images" in note.inner_text() and "top-10 + 3 controls" in note.inner_text()
    shot(page, "first-hour-small-set-adapted")


def _labeled_network():
    """A run with crowd labels (2 workers per unit) and a newer run of the same network without."""
    from annotate.crowd.models import Answer, Campaign, Task, Worker
    from annotate.labels.aggregation import run_labels_recompute

    run = build_run(units=3, tops=6, controls=1)
    campaign = Campaign.objects.create(name="picker campaign", run=run, layers=["conv5"])
    workers = [Worker.objects.create(pseudonym=f"w{i}") for i in range(2)]
    for unit in Unit.objects.filter(layer__run=run):
        task = Task.objects.create(campaign=campaign, unit=unit, tile_order=[])
        for worker in workers:
            assignment = Assignment.objects.create(task=task, worker=worker, status="approved")
            Answer.objects.create(
                assignment=assignment, concept_text="tree", category="object", precision=0.9
            )
    run_labels_recompute(run_id=run.pk)
    newer = DissectionRun.objects.create(
        network=run.network, image_set=run.image_set, layers=["conv5"], status="done"
    )
    Unit.objects.create(
        layer=Layer.objects.create(run=newer, name="conv5", order=0, unit_count=1), index=0
    )
    return run, newer


def test_the_run_picker_shows_the_run_and_switches_by_keyboard(
    page_as, live_server, make_user, shot
):
    run, newer = _labeled_network()
    page = page_as(make_user("researcher"))
    page.goto(live_server.url + reverse("labels:detectors", args=[run.network.name]))
    picker = page.locator("form.run-picker")
    assert f"Showing run {run.pk}: picked automatically" in picker.inner_text()
    assert page.locator("figure.chart svg").count() == 1  # 3 detectors drawn
    shot(page, "first-hour-run-picker-default")
    select = page.get_by_label(f"Run of {run.network.name}")
    select.focus()
    select.select_option(str(newer.pk))
    page.keyboard.press("Tab")  # to "Show this run"
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(rf"[?&]run={newer.pk}"))
    assert f"Showing run {newer.pk} (chosen)" in page.locator("form.run-picker").inner_text()
    empty = page.locator("p.empty-state")
    assert f"No crowd labels on run {newer.pk} yet" in empty.inner_text()
    assert page.locator("figure.chart").count() == 0
    shot(page, "first-hour-run-picker-chosen")
    # The report tabs keep the chosen run.
    page.get_by_role("link", name="Categories (Fig. 9)").click()
    assert f"Showing run {newer.pk} (chosen)" in page.locator("form.run-picker").inner_text()


def test_review_shows_the_marked_tiles_and_keeps_the_ticks(page_as, live_server, make_user, shot):
    run = build_run(units=2)
    campaign = services.campaign_create(run=run, layers=["conv5"], redundancy=2)
    services.campaign_set_status(campaign=campaign, status="live", actor=None)
    client = Client()
    marked_by = {}
    for _ in range(2):
        client.force_login(make_user("annotator"))
        started = client.post(reverse("crowd:task-start", args=[campaign.pk]))
        a = Assignment.objects.get(
            pk=int(re.search(r"/assignments/(\d+)/", started["Location"])[1])
        )
        kinds = dict(UnitImage.objects.filter(pk__in=a.task.tile_order).values_list("pk", "kind"))
        marked = [p for p, pk in enumerate(a.task.tile_order) if kinds[pk] == "control"] + [0, 1]
        client.post(
            reverse("crowd:task", args=[a.pk]),
            {"concept": "tree", "category": "object", "flagged": sorted(set(marked))},
        )
        marked_by[a.pk] = sorted(set(marked))
    page = page_as(make_user("researcher"))
    page.goto(live_server.url + reverse("crowd:campaign-detail", args=[campaign.pk]))
    thumbs = page.locator(".review-thumbs img")
    thumbs.first.wait_for()
    loaded = page.evaluate(
        """async () => {
            const images = [...document.querySelectorAll('.review-thumbs img')];
            images.forEach(img => { img.loading = 'eager'; });  // lazy ones below the fold too
            return Promise.all(images.map(img => img.decode().then(() => true, () => false)));
        }"""
    )
    assert loaded and all(loaded), "every thumbnail loads"
    assert page.locator(".review-thumbs li.flagged").count() == sum(map(len, marked_by.values()))
    first = next(iter(marked_by))
    unit_link = page.locator(f"tr:has(input[value='{first}']) td a").first
    assert "/units/" in unit_link.get_attribute("href") or "/layers/" in unit_link.get_attribute(
        "href"
    )
    shot(page, "first-hour-review-marked-tiles")

    page.check(f"input[name=assignment][value='{first}']")
    page.get_by_role("button", name="Reject selected").click()
    alert = page.locator("#review-error")
    alert.wait_for()
    assert "still ticked" in alert.inner_text() and "type the reason" in alert.inner_text()
    assert page.is_checked(f"input[name=assignment][value='{first}']")
    shot(page, "first-hour-review-reject-without-reason")
    assert Assignment.objects.get(pk=first).status == Assignment.Status.SUBMITTED


def test_a_refused_page_is_the_styled_403(page_as, live_server, make_user, shot):
    page = page_as(make_user("annotator", "anna"))
    response = page.goto(live_server.url + reverse("labels:index"))
    assert response.status == 403
    assert page.locator("h1").inner_text() == "Not allowed"
    assert "logged in as anna" in page.locator("main").inner_text()
    # Styled: the site's stylesheet applies (the message box has its colour, not a bare page).
    background = page.evaluate(
        "() => getComputedStyle(document.querySelector('.message.error')).backgroundColor"
    )
    assert background not in ("rgba(0, 0, 0, 0)", "transparent")
    page.get_by_role("link", name="Back to the start page").wait_for()
    shot(page, "first-hour-403")


def test_explain_page_says_what_the_chosen_network_knows(page_as, live_server, make_user, shot):
    from annotate.labels.models import UnitLabel
    from dissect.models import AutoLabel, Network
    from dissect.services.networks import network_by_name

    demo = network_by_name("demo-objects")
    imported = Network.objects.create(name="paper-net", arch="alexnet", source="imported")
    for network, status in ((demo, "done"), (imported, "imported")):
        run = DissectionRun.objects.create(network=network, layers=["conv5"], status=status)
        layer = Layer.objects.create(run=run, name="conv5", order=0, unit_count=1)
        unit = Unit.objects.create(layer=layer, index=0, threshold=0.0, top_score=1.0)
        AutoLabel.objects.create(unit=unit, category="", label="car", iou=0.3)
        UnitLabel.objects.create(unit=unit, source="crowd", concept_text="car", is_detector=True)
    page = page_as(make_user("researcher"))
    page.goto(live_server.url + reverse("explain:page") + "?network=demo-objects")
    notes = page.locator("#network-notes")
    assert "demo-objects is a demo network" in notes.inner_text()
    assert "mean nothing" in notes.inner_text()
    shot(page, "first-hour-explain-demo-note")
    page.select_option("#id_network", "paper-net")
    assert "paper-net has no weights" in notes.inner_text()
    assert "demo network" not in notes.inner_text()
    option = page.locator("#id_network option[value=paper-net]").inner_text()
    assert "no weights: cannot explain" in option
