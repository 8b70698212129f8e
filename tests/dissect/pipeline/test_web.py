"""Run pages and the API: rendering, permissions, starting a run from the web and via DRF."""

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from dissect.models import DissectionRun, Image, UnitImage
from dissect.services import run_create, run_start

from .conftest import SMALL, run_eagerly


@pytest.fixture
def researcher(make_user):
    return make_user("researcher")


@pytest.fixture
def done_run(tiny_network, image_set, django_capture_on_commit_callbacks):
    Image.objects.filter(pk=image_set.images.first().pk).update(
        status=Image.Status.BAD, reason="b/img000.png: truncated or corrupt image data"
    )
    run = run_create(network=tiny_network, image_set=image_set, layers=["features.1"], top_k=3,
                     controls=1, shard_size=6, tile_px=20)  # fmt: skip
    run_eagerly(run_start, django_capture_on_commit_callbacks, run=run)
    run.refresh_from_db()
    assert run.status == DissectionRun.Status.DONE, run.error
    return run


@pytest.mark.django_db
def test_pages_render_progress_layers_units_and_bad_files(client, researcher, done_run):
    client.force_login(researcher)
    listing = client.get(reverse("dissect:run-list"))
    assert listing.status_code == 200 and f"#{done_run.pk}" in listing.content.decode()

    detail = client.get(reverse("dissect:run-detail", args=[done_run.pk])).content.decode()
    assert "features.1" in detail and "truncated or corrupt image data" in detail
    assert 'data-stage="render"' in detail and "run_status.js" in detail

    status = client.get(reverse("dissect:run-status", args=[done_run.pk])).json()
    assert status["status"] == "done" and status["finished"] is True
    assert {s["stage"]: s["done"] == s["total"] for s in status["stages"]} == {
        "extract": True, "merge": True, "render": True,
    }  # fmt: skip

    grid = client.get(reverse("dissect:layer-detail", args=[done_run.pk, "features.1"]))
    page = grid.content.decode()
    assert grid.status_code == 200 and page.count('class="unit-grid"') == 1
    assert page.count("/files/dissect/montages/") == 48  # first page of 64 units

    # A crowd label (annotate's model, reached only through the reverse relation) is shown.
    labelled = done_run.layer_set.get().units.get(index=5)
    labelled.labels.create(concept_text="zebra stripes", precision=0.9, is_detector=True)
    unit = client.get(reverse("dissect:unit-detail", args=[done_run.pk, "features.1", 5]))
    body = unit.content.decode()
    tiles = UnitImage.objects.filter(unit__layer__run=done_run, unit__index=5)
    assert unit.status_code == 200
    assert all(ui.tile_path in body for ui in tiles) and "quantile" in body
    assert "zebra stripes" in body and '<span class="badge ok">yes</span>' in body  # detector: yes
    missing = client.get(reverse("dissect:unit-detail", args=[done_run.pk, "features.1", 999]))
    assert missing.status_code == 404


@pytest.mark.django_db
def test_annotators_cannot_see_runs(client, make_user, done_run):
    client.force_login(make_user("annotator"))
    assert client.get(reverse("dissect:run-detail", args=[done_run.pk])).status_code == 403
    api = APIClient()
    api.force_authenticate(make_user("annotator"))
    assert api.get("/api/dissect/runs/").status_code == 403


@pytest.mark.django_db
def test_researcher_starts_a_run_from_the_web(
    client, researcher, tiny_network, image_set, django_capture_on_commit_callbacks
):
    client.force_login(researcher)
    form = client.get(reverse("dissect:run-create"))
    assert form.status_code == 200 and 'name="layers"' in form.content.decode()
    bad = client.post(reverse("dissect:run-create"), {
        "network": "tiny", "image_set": image_set.name, "layers": "nope", "top_k": 3,
        "controls": 1, "shard_size": 6, "segmentation": "quantile", "device": "cpu", "tile_px": 20,
    })  # fmt: skip
    assert bad.status_code == 200 and "Valid layer names" in bad.content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("dissect:run-create"), {
            "network": "tiny", "image_set": image_set.name, "layers": SMALL, "top_k": 3,
            "controls": 1, "shard_size": 6, "segmentation": "activation", "device": "cpu",
            "tile_px": 20,
        })  # fmt: skip
    run = DissectionRun.objects.get()
    assert response.status_code == 302 and response.url == reverse(
        "dissect:run-detail", args=[run.pk]
    )
    assert run.status == DissectionRun.Status.DONE and run.created_by == researcher
    assert run.parameters["segmentation"] == "activation"


@pytest.mark.django_db
def test_api_creates_starts_and_reads_a_run(
    researcher, tiny_network, image_set, django_capture_on_commit_callbacks
):
    api = APIClient()
    api.force_authenticate(researcher)
    assert [n["name"] for n in api.get("/api/dissect/networks/").json()["results"]] == ["tiny"]
    created = api.post("/api/dissect/runs/", {
        "network": "tiny", "image_set": image_set.name, "layers": [SMALL], "top_k": 2,
        "controls": 1, "shard_size": 5, "tile_px": 20, "start": False,
    }, format="json")  # fmt: skip
    assert created.status_code == 201, created.json()
    run_id = created.json()["id"]
    assert created.json()["status"] == "pending"
    with django_capture_on_commit_callbacks(execute=True):
        started = api.post(f"/api/dissect/runs/{run_id}/start/")
    assert started.status_code == 200 and started.json()["status"] == "running"
    assert api.get(f"/api/dissect/runs/{run_id}/").json()["status"] == "done"
    assert api.get(f"/api/dissect/runs/{run_id}/status/").json()["shards"] == {
        "done": 3,
        "total": 3,
    }
    layers = api.get(f"/api/dissect/layers/?run={run_id}").json()["results"]
    assert [layer["name"] for layer in layers] == [SMALL]
    units = api.get(f"/api/dissect/units/?run={run_id}&layer={SMALL}").json()
    assert units["count"] == 16
    unit = api.get(f"/api/dissect/units/{units['results'][0]['id']}/").json()
    assert [i["rank"] for i in unit["images"] if i["kind"] == "top"] == [0, 1]
    assert all(i["tile_url"].startswith("/files/dissect/tiles/") for i in unit["images"])
    again = api.post(f"/api/dissect/runs/{run_id}/start/")
    assert again.status_code == 409
    bad = api.post("/api/dissect/runs/", {"network": "tiny", "image_set": image_set.name,
                                           "layers": ["layer9"]}, format="json")  # fmt: skip
    assert bad.status_code == 400 and "layer9" in bad.json()["detail"]


@pytest.mark.django_db
def test_api_sets_advanced_options_and_names_a_bad_one(researcher, tiny_network, image_set):
    api = APIClient()
    api.force_authenticate(researcher)
    request = {"network": "tiny", "image_set": image_set.name, "layers": [SMALL], "start": False}
    created = api.post("/api/dissect/runs/", {
        **request, "batch_size": 4, "workers": 0,
        "options": {"quantile": 0.99, "rf_images": 3, "auto_labels": False},
    }, format="json")  # fmt: skip
    assert created.status_code == 201, created.json()
    parameters = DissectionRun.objects.get(pk=created.json()["id"]).parameters
    assert parameters["quantile"] == 0.99 and parameters["rf_images"] == 3
    assert parameters["batch_size"] == 4 and parameters["auto_labels"] is False
    assert parameters["rf_patch_px"] == 11  # left out: the pipeline's default

    for options, message in [
        ({"quantile": 1.5}, "quantile: give a number between 0 and 1, exclusive."),
        ({"rf_images": 0}, "rf_images: give a whole number from 1 to 100."),
        ({"montage_tile_px": 4096}, "montage_tile_px: give a whole number from 16 to 512."),
    ]:
        bad = api.post("/api/dissect/runs/", {**request, "options": options}, format="json")
        assert bad.status_code == 400 and message in bad.json()["detail"], bad.json()
    typo = api.post("/api/dissect/runs/", {**request, "batch_size": 0}, format="json")
    assert typo.status_code == 400 and "batch_size" in typo.json()
    assert DissectionRun.objects.count() == 1  # refused requests left nothing behind
