"""The paper commands (minimal_images, ablate, why_objects) end to end on the shipped demo-places
checkpoint with a few images, and the pages that show their stored reports."""

import json

import numpy as np
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from PIL import Image


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    from django.test import override_settings

    data = tmp_path_factory.mktemp("paper")
    out = data / "out"
    out.mkdir()
    with override_settings(DATA_DIR=data):
        call_command(
            "minimal_images",
            "--network",
            "demo-places",
            "--demo-world",
            "--n-images",
            "4",
            "--examples",
            "4",
            "--json",
            str(out / "minimal.json"),
            verbosity=0,
        )
        call_command(
            "why_objects",
            "--network",
            "demo-places",
            "--layers",
            "conv5",
            "--n-images",
            "30",
            "--json",
            str(out / "why.json"),
            verbosity=0,
        )
        call_command(
            "ablate",
            "--network",
            "demo-places",
            "--n-images",
            "30",
            "--label-images",
            "30",
            "--top-k",
            "2",
            "--json",
            str(out / "ablation.json"),
            verbosity=0,
        )
        yield (
            data,
            {
                k: json.loads((out / f"{k}.json").read_text())
                for k in ("minimal", "why", "ablation")
            },
        )


def test_commands_write_json_reports(reports):
    _, reports = reports
    minimal = reports["minimal"]
    assert minimal["n_images"] == 4 and len(minimal["scenes"]) == 10
    assert 0 <= minimal["overall"]["empty"] <= minimal["overall"]["correct"]
    example = minimal["examples"][0]
    assert example["image"].startswith("data:image/jpeg;base64,")
    assert all(s["image"].startswith("data:image/") for s in example["steps"])
    assert set(example["kept"]).isdisjoint(example["removed"])
    why = reports["why"]
    assert len(why["objects"]) == 28 and "pearson_r" in why["detectors_vs_discriminative"]
    ablation = reports["ablation"]
    assert ablation["units"] == 128 and ablation["split"].startswith("layer tail")
    assert ablation["all_units_zeroed"]["overall"] < 0.3
    row = ablation["per_class"][0]
    assert 0 <= row["auc"] <= 1 and 0 <= row["keep_only_top"]["auc"] <= 1


@pytest.mark.django_db
def test_pages_show_the_reports(reports, client, make_user, settings):
    settings.DATA_DIR = reports[0]
    client.force_login(make_user("annotator"))
    assert client.get("/explain/paper/").status_code == 403
    client.force_login(make_user("researcher"))
    index = client.get("/explain/paper/")
    assert index.status_code == 200 and b"/explain/paper/demo-places/why/" in index.content
    why = client.get("/explain/paper/demo-places/why/")
    assert why.status_code == 200 and why.content.count(b"<svg") == 2
    assert b"Pearson r" in why.content
    minimal = client.get("/explain/paper/demo-places/minimal/")
    assert minimal.status_code == 200 and b"data:image/jpeg;base64," in minimal.content
    steps = [s for ex in reports[1]["minimal"]["examples"] for s in ex["steps"]]
    assert (b"(stop)" in minimal.content) == any(not s["correct"] for s in steps)
    ablation = client.get("/explain/paper/demo-places/ablation/")
    assert ablation.status_code == 200 and b"bathroom" in ablation.content
    assert client.get("/explain/paper/nosuch/why/").status_code == 404


def test_method_1_on_image_files(settings, tmp_path):
    from dissect.demo.world import render

    settings.DATA_DIR = tmp_path
    path = tmp_path / "scene.png"
    Image.fromarray(render(2025, 3).image).save(path)
    (tmp_path / "broken.jpg").write_bytes(b"not an image")
    call_command(
        "minimal_images",
        "--network",
        "demo-places",
        "--segments",
        "8",
        str(path),
        str(tmp_path / "broken.jpg"),
        "--json",
        str(tmp_path / "m1.json"),
        verbosity=0,
    )
    report = json.loads((tmp_path / "m1.json").read_text())
    (image,) = report["images"]
    assert image["segments"] <= 12 and 0 < image["pixels_kept"] <= 1
    assert report["failed"][0]["path"].endswith("broken.jpg")
    call_command(
        "minimal_images",
        "--network",
        "demo-places",
        "--demo-world",
        "--method",
        "slic",
        "--n-images",
        "2",
        "--segments",
        "6",
        "--json",
        str(tmp_path / "m1w.json"),
        verbosity=0,
    )
    world = json.loads((tmp_path / "m1w.json").read_text())
    assert world["n_images"] == 2 and len(world["method1_scenes"]) == 10
    share = world["overall"]["object_share_of_kept_pixels"]
    assert share is None or 0 <= share <= 1
    stored = json.loads((tmp_path / "paper" / "demo-places.minimal.json").read_text())
    assert "images" in stored  # the files' report: method 1 on the world is not stored
    with pytest.raises(CommandError):
        call_command("minimal_images", "--network", "demo-places", verbosity=0)
    with pytest.raises(CommandError, match="demo-places"):
        call_command("minimal_images", "--network", "demo-objects", "--demo-world", verbosity=0)


def test_scatter_plot_is_well_formed():
    import xml.etree.ElementTree as ET

    from annotate.explain.paper_plots import scatter_plot

    svg = scatter_plot(
        xs=[0.1, 0.5, 0.9],
        ys=[1, 3, 2],
        labels=["a", "b", "c"],
        title="t",
        x_label="x",
        y_label="y",
        note="r = 0.5",
    )
    root = ET.fromstring(svg)
    assert root.tag.endswith("svg") and len(root.findall(".//{*}circle")) == 3
    assert np.isfinite(len(svg))
