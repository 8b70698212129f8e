"""The automatic-label stage inside a real (eager) run, then the explain page, API and reports.

The run dissects the color network over the color world imported through the Broden importer;
the network row is real, its loading is the hand-made color network (its true labels are known).
"""

import io

import numpy as np
import pytest
from PIL import Image

from dissect.models import AutoLabel, Network
from tests.color_world import color_network, color_sample, write_color_world


@pytest.fixture
def labeled_run(db, tmp_path, monkeypatch, django_capture_on_commit_callbacks, settings):
    from dissect import services
    from dissect.services import import_broden

    settings.DATA_DIR = tmp_path / "data"
    net = color_network()
    # Every stage loads the network through dissect.networks.load_network: hand it the color net.
    monkeypatch.setattr("dissect.networks.load_network", lambda arch, **options: net)
    monkeypatch.setattr("dissect.services.networks._NET_CACHE", {})
    world = write_color_world(tmp_path / "world", 40, seed=3)
    image_set = import_broden(root=world, name="color-world")
    network = Network.objects.create(
        name="color-net",
        arch="color-net",
        source=Network.Source.BUILTIN,
        layer_aliases=net.layer_aliases,
    )
    run = services.run_create(
        network=network,
        image_set=image_set,
        layers=["conv"],
        top_k=5,
        controls=0,
        shard_size=20,
        # Boxes cover far more than 0.5 % of the pixels: threshold at the top 20 % instead.
        options={"auto_labels": True, "quantile": 0.8},
    )
    with django_capture_on_commit_callbacks(execute=True):
        services.run_start(run=run)
    run.refresh_from_db()
    assert run.status == "done", run.error
    return run


def test_importer_and_auto_label_stage(labeled_run):
    from annotate.explain.selectors import labeled_units
    from dissect.selectors import auto_labels_by_layer, gold_from_auto_labels, gold_unit_candidates

    assert labeled_run.image_set.image_count == 40
    assert labeled_run.progress["auto_label"]["done"] == labeled_run.progress["auto_label"]["total"]
    overall = {
        a.unit.index: a for a in AutoLabel.objects.filter(unit__layer__run=labeled_run, category="")
    }
    assert [overall[u].label for u in range(3)] == ["red box", "green box", "blue box"]
    assert 3 not in overall  # the dead unit gets no label
    per_category = AutoLabel.objects.filter(unit__layer__run=labeled_run, unit__index=0)
    assert {a.category for a in per_category} == {"", "object", "scene"}
    run, units = labeled_units(network=labeled_run.network, source="auto")
    assert run == labeled_run
    assert {(u.unit, u.concept, u.category) for u in units} >= {(0, "red box", "object")}
    assert all(u.threshold is not None and u.top_score > 0 for u in units)
    summary = auto_labels_by_layer(run=labeled_run)
    assert summary["conv"]["labeled"] >= 3
    gold = gold_unit_candidates(run=labeled_run, min_iou=0.2)
    assert {g["unit"] for g in gold} >= {0, 1, 2}
    seeds = gold_from_auto_labels(run=labeled_run, min_iou=0.2)
    assert {seeds[g["unit_id"]] for g in gold if g["unit"] == 0} == {("red box", "object")}


def test_agreement_counts_crowd_and_auto(labeled_run):
    from annotate.explain.selectors import crowd_auto_agreement, labeled_units
    from annotate.labels.models import UnitLabel

    units = {u.index: u for u in labeled_run.layer_set.get().units.all()}
    UnitLabel.objects.create(unit=units[0], source="crowd", concept_text="Red_Box", category="object",
                             precision=0.9, is_detector=True)  # fmt: skip
    UnitLabel.objects.create(unit=units[1], source="crowd", concept_text="grass", category="region",
                             precision=0.8, is_detector=True)  # fmt: skip
    (row,) = crowd_auto_agreement(run=labeled_run)
    assert row["both"] == 2 and row["concept_agree"] == 1 and row["category_agree"] == 1
    _, crowd = labeled_units(network=labeled_run.network, source="crowd")
    assert sorted((u.unit, u.concept) for u in crowd) == [(0, "Red_Box"), (1, "grass")]


def png_bytes(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def test_page_explains_demo_and_uploaded_images(labeled_run, client, make_user):
    client.force_login(make_user("researcher"))
    page = client.get("/explain/")
    assert page.status_code == 200
    assert b"color-net" in page.content
    demo = labeled_run.image_set.images.order_by("id").first()
    assert f"/explain/images/{demo.pk}/".encode() in page.content
    assert client.get(f"/explain/images/{demo.pk}/").status_code == 200
    shown = client.post(
        "/explain/", {"network": "color-net", "labels": "auto", "demo_image": demo.pk}
    )
    assert shown.status_code == 200
    result = shown.context["result"]
    assert result["scenes"][0]["label"].endswith("scene")
    image, labels, scene = color_sample(np.random.default_rng(11))
    upload = io.BytesIO(png_bytes(image))
    upload.name = "mine.png"
    shown = client.post("/explain/", {"network": "color-net", "labels": "both", "image": upload})
    assert shown.status_code == 200
    result = shown.context["result"]
    assert result["scenes"][0]["index"] == scene
    present = {
        f"{c} box" for k, c in enumerate(("red", "green", "blue")) if (labels == k + 1).sum() >= 64
    }
    assert present <= {c["concept"] for c in result["concepts"]}
    assert all(c["layer_url"] and c["color"].startswith("#") for c in result["concepts"])
    assert client.get(result["overlay_url"]).status_code == 200


def test_page_refuses_bad_uploads(labeled_run, client, make_user):
    client.force_login(make_user("researcher"))
    fake = io.BytesIO(b"hello, not an image" * 20)
    fake.name = "photo.jpg"
    refused = client.post("/explain/", {"network": "color-net", "labels": "auto", "image": fake})
    assert refused.status_code == 400
    assert b"photo.jpg: not a JPEG, PNG or WebP file" in refused.content
    from annotate.explain.uploads import MAX_UPLOAD_BYTES

    big = io.BytesIO(b"\xff\xd8\xff" + b"\0" * MAX_UPLOAD_BYTES)  # JPEG magic, 20 MB + 3 bytes
    big.name = "huge.jpg"
    refused = client.post("/explain/", {"network": "color-net", "labels": "auto", "image": big})
    assert refused.status_code == 400
    assert b"huge.jpg: 20.0 MB is over the 20 MB limit" in refused.content


def test_api_returns_the_same_explanation(labeled_run, client, make_user):
    client.force_login(make_user("researcher"))
    image, _, scene = color_sample(np.random.default_rng(5))
    upload = io.BytesIO(png_bytes(image))
    upload.name = "api.png"
    answer = client.post(
        "/api/explain/", {"network": "color-net", "labels": "auto", "image": upload}
    )
    assert answer.status_code == 200, answer.content
    data = answer.json()
    assert data["scenes"][0]["index"] == scene and len(data["scenes"]) == 3
    assert all("mask_rle" in c and c["best_unit"]["source"] == "auto" for c in data["concepts"])
    gif = io.BytesIO()
    Image.new("P", (8, 8)).save(gif, format="GIF")
    gif.seek(0)
    gif.name = "a.png"
    refused = client.post("/api/explain/", {"network": "color-net", "image": gif})
    assert refused.status_code == 400 and "not a JPEG, PNG or WebP" in refused.json()["detail"]


def test_pages_are_for_researchers(labeled_run, client, make_user):
    client.force_login(make_user("annotator"))
    assert client.get("/explain/").status_code == 403
    client.force_login(make_user("researcher"))
    report = client.get(f"/explain/runs/{labeled_run.pk}/agreement/")
    assert report.status_code == 200 and b"red box" in report.content


def test_explain_command_writes_overlays_and_json(labeled_run, tmp_path):
    import json

    from django.core.management import call_command

    folder = tmp_path / "mine"
    folder.mkdir()
    rng = np.random.default_rng(2)
    for i in range(3):
        Image.fromarray(color_sample(rng)[0]).save(folder / f"p{i}.png")
    (folder / "broken.jpg").write_bytes(b"nope")
    call_command("explain", str(folder), "--network", "color-net", "--labels", "auto", verbosity=0)
    out = folder / "explain-out"
    assert sorted(p.name for p in out.glob("*.json")) == ["p0.json", "p1.json", "p2.json"]
    assert len(list(out.glob("*.overlay.png"))) == 3
    data = json.loads((out / "p0.json").read_text())
    assert data["network"] == "color-net" and len(data["scenes"]) == 3


def test_a_higher_iou_level_keeps_only_strong_automatic_labels(labeled_run, client, make_user):
    from annotate.explain.services import ExplainError, explain_image

    network = labeled_run.network
    pixels, _, _ = color_sample(np.random.default_rng(7))
    image = Image.fromarray(pixels)

    def used(payload) -> list[float]:
        return sorted(u["label_score"] for c in payload["concepts"] for u in c["units"])

    every = used(explain_image(network=network, image=image, source="auto", min_iou=0.0))
    assert len(set(every)) >= 2  # units of different IoU fire on this image
    level = (every[0] + every[-1]) / 2
    strong = used(explain_image(network=network, image=image, source="auto", min_iou=level))
    assert strong == [iou for iou in every if iou >= level] and 0 < len(strong) < len(every)
    with pytest.raises(
        ExplainError, match=r"best automatic label has IoU 0\.\d+, below the IoU level 1: lower"
    ):
        explain_image(network=network, image=image, source="auto", min_iou=1.0)

    client.force_login(make_user("researcher"))
    upload = io.BytesIO(png_bytes(pixels))
    upload.name = "strong.png"
    form = {"network": "color-net", "labels": "auto", "image": upload, "min_iou": f"{level}"}
    answer = client.post("/api/explain/", form)
    assert answer.status_code == 200 and used(answer.json()) == strong
    upload.seek(0)
    refused = client.post("/api/explain/", {**form, "min_iou": "1.5"})
    assert refused.status_code == 400 and "min_iou" in refused.json()
    upload.seek(0)
    page = client.post("/explain/", {**form, "min_iou": "1"})
    assert page.status_code == 400 and b"below the IoU level 1: lower" in page.content
