"""One-pass runs on a labeled image set (the color world, whose true labels are known): automatic
labels from the extraction pass equal the two-pass computation, sharding changes nothing,
rendering from the stored maps equals rendering by re-running the network, and bad input (label
maps missing or of another size, a GPU out of memory) is said and survivable."""

import csv

import numpy as np
import pytest
import torch
from django.urls import reverse
from PIL import Image

from dissect.models import AutoLabel, DissectionRun, Unit, UnitImage
from tests.color_world import color_network, write_color_world


@pytest.fixture
def color_setup(db, tmp_path, monkeypatch, settings):
    """The color world imported as a Broden image set, and the color network registered (every
    stage loads it through dissect.networks.load_network)."""
    from dissect.models import Network
    from dissect.services import import_broden

    settings.DATA_DIR = tmp_path / "data"
    net = color_network()
    monkeypatch.setattr("dissect.networks.load_network", lambda arch, **options: net)
    monkeypatch.setattr("dissect.services.networks._NET_CACHE", {})
    world = write_color_world(tmp_path / "world", 40, seed=3)
    image_set = import_broden(root=world, name="color-world")
    network = Network.objects.create(
        name="color-net", arch="color-net", source=Network.Source.BUILTIN,
        layer_aliases=net.layer_aliases,
    )  # fmt: skip
    return net, world, image_set, network


def _run(setup, capture, *, shard_size=40, options=None, **kwargs):
    from dissect import services

    _net, _world, image_set, network = setup
    run = services.run_create(
        network=network, image_set=image_set, layers=["conv"], top_k=5, controls=2,
        shard_size=shard_size, batch_size=kwargs.pop("batch_size", 8),
        # Boxes cover far more than 0.5 % of the pixels: threshold at the top 20 % instead.
        options={"quantile": 0.8, **(options or {})}, **kwargs,
    )  # fmt: skip
    with capture(execute=True):
        services.run_start(run=run)
    run.refresh_from_db()
    return run


def _labels(run) -> dict:
    return {
        (a.unit.index, a.category): (a.label, a.iou)
        for a in AutoLabel.objects.filter(unit__layer__run=run).select_related("unit")
    }


def test_one_pass_labels_equal_the_two_pass_computation(
    color_setup, django_capture_on_commit_callbacks
):
    from dissect.autolabel import best_labels_by_category, compute_auto_labels
    from dissect.broden import read_broden

    net, world, _, _ = color_setup
    run = _run(color_setup, django_capture_on_commit_callbacks)
    assert run.status == DissectionRun.Status.DONE, run.error
    assert "auto_label" not in run.timings or run.timings["auto_label"] < 60
    # The two-pass reference: a second decode and forward pass, dense masks at the unit
    # thresholds the run stored, compared at the label maps' own size (32 px).
    thresholds = torch.tensor(
        list(
            Unit.objects.filter(layer__run=run)
            .order_by("index")
            .values_list("threshold", flat=True)
        )
    )
    dataset = read_broden(world)
    reference = compute_auto_labels(
        net=net, layers=["conv"], dataset=dataset, thresholds={"conv": thresholds}, mask_px=32
    )["conv"]
    expected = {
        (lab.unit, lab.category): (lab.label, lab.iou)
        for rows in best_labels_by_category(reference.iou, dataset)
        for lab in rows
    }
    got = _labels(run)
    assert got.keys() == expected.keys()
    for key, (label, iou) in expected.items():
        assert got[key][0] == label
        # Same integer counts (thresholds are bin edges); only float32 vs float64 division.
        assert abs(got[key][1] - iou) <= 1e-6
    assert [got[(u, "")][0] for u in range(3)] == ["red box", "green box", "blue box"]
    entry = run.progress["auto_label"]
    assert entry["labeled"] == 40 and entry["without_labels"] == 0 and entry["inexact_units"] == 0


def test_counts_csv_view_and_api(
    color_setup, django_capture_on_commit_callbacks, client, make_user
):
    run = _run(color_setup, django_capture_on_commit_callbacks)
    url = reverse("dissect:auto-label-counts", args=[run.pk])
    client.force_login(make_user("annotator"))
    assert client.get(url).status_code == 403
    client.force_login(make_user("researcher"))
    response = client.get(url)
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(response.content.decode().splitlines()))
    assert len(rows) == AutoLabel.objects.filter(unit__layer__run=run).count()
    for row in rows:
        inter, area, label_area = (int(row[k]) for k in ("intersection", "unit_area", "label_area"))
        # The score is the counts' IoU (plain denominator: union = unit + label - intersection).
        assert float(row["iou"]) == pytest.approx(inter / (area + label_area - inter), abs=1e-6)
    api = client.get(f"/api/dissect/runs/{run.pk}/auto-label-counts/?layer=conv").json()
    assert len(api) == len(rows) and {r["category"] for r in api} == {"", "object", "scene"}


def test_sharded_equals_unsharded(color_setup, django_capture_on_commit_callbacks):
    whole = _run(color_setup, django_capture_on_commit_callbacks, shard_size=40)
    shards = _run(color_setup, django_capture_on_commit_callbacks, shard_size=7)
    assert shards.shards.count() == 6 and shards.status == "done", shards.error
    assert _labels(whole) == _labels(shards)
    # Every shard used the windows the first one stored from the run-wide sample.
    assert shards.parameters["iou_window"]

    def lists(run):
        return sorted(
            UnitImage.objects.filter(unit__layer__run=run).values_list(
                "unit__index", "kind", "rank", "image__path", "score", "tile_path"
            )
        )

    assert lists(whole) == lists(shards)


def test_render_from_stored_maps_equals_a_rerun(
    color_setup, django_capture_on_commit_callbacks, monkeypatch
):
    from django.core.files.storage import default_storage

    from dissect import services

    run = _run(color_setup, django_capture_on_commit_callbacks)
    stored = dict(UnitImage.objects.filter(unit__layer__run=run).values_list("id", "tile_path"))
    monkeypatch.setattr("dissect.services.rendering.stored_maps", lambda run_id: None)
    DissectionRun.objects.filter(pk=run.pk).update(status="running")
    services.run_render(run_id=run.pk)
    rerun = dict(UnitImage.objects.filter(unit__layer__run=run).values_list("id", "tile_path"))
    assert stored.keys() == rerun.keys() and all(stored.values())
    same = sum(stored[k] == rerun[k] for k in stored)
    # The stored maps are the float32 maps rounded once to float16 (relative error <= 2**-11):
    # a tile can differ only where a mask pixel sits within that of the threshold. Content
    # addressing makes equal tiles the same file.
    for key in stored:
        if stored[key] != rerun[key]:
            a = np.asarray(Image.open(default_storage.open(stored[key])), np.int16)
            b = np.asarray(Image.open(default_storage.open(rerun[key])), np.int16)
            assert (np.abs(a - b) > 40).mean() <= 0.02
    assert same / len(stored) >= 0.95  # 26 of 26 here


def test_labels_missing_or_of_another_size_are_counted_and_said(
    color_setup, django_capture_on_commit_callbacks
):
    _net, world, _, _ = color_setup
    index = world / "index.csv"
    lines = index.read_text().splitlines()
    index.write_text("\n".join(lines[:-4]) + "\n")  # the last 4 images lose their labels
    for name in ("000_object.png", "001_object.png"):  # two maps stored at half size
        path = world / "images" / name
        Image.open(path).resize((16, 16), Image.NEAREST).save(path)
    run = _run(color_setup, django_capture_on_commit_callbacks)
    assert run.status == "done", run.error
    entry = run.progress["auto_label"]
    assert entry["labeled"] == 36 and entry["without_labels"] == 4
    assert entry["resized"] == 2 and "resized to 32 px" in entry["note"]
    # The unlabeled images still count for top-K and the quantile sketch.
    assert UnitImage.objects.filter(unit__layer__run=run).exists()
    assert _labels(run)[(0, "")][0] == "red box"


def test_cuda_out_of_memory_names_the_batch_size_and_the_run_resumes(
    color_setup, django_capture_on_commit_callbacks, monkeypatch
):
    from dissect import services
    from dissect.engine import extract as extract_module

    real = extract_module.extract_unit_stats

    def out_of_memory(*args, **kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr("dissect.engine.extract_unit_stats", out_of_memory)
    with pytest.raises(services.PipelineError):
        _run(color_setup, django_capture_on_commit_callbacks, batch_size=16)
    run = DissectionRun.objects.get()
    assert run.status == "failed"
    assert "batch size 16" in run.error and "--batch-size 8" in run.error
    monkeypatch.setattr("dissect.engine.extract_unit_stats", real)
    with django_capture_on_commit_callbacks(execute=True):
        services.run_resume(run=run)
    run.refresh_from_db()
    assert run.status == "done", run.error


def test_auto_label_command_for_an_old_run_uses_the_same_counts(
    color_setup, django_capture_on_commit_callbacks
):
    from dissect.autolabel import run_auto_labels

    one_pass = _run(color_setup, django_capture_on_commit_callbacks)
    old = _run(color_setup, django_capture_on_commit_callbacks, options={"auto_labels": False})
    assert not AutoLabel.objects.filter(unit__layer__run=old).exists()
    assert "iou_window" not in old.parameters
    written = run_auto_labels(run_id=old.pk)
    assert written == AutoLabel.objects.filter(unit__layer__run=one_pass).count()
    assert _labels(old) == _labels(one_pass)


def test_render_from_stored_maps_on_a_real_cnn(
    tiny_network, image_set, django_capture_on_commit_callbacks, monkeypatch
):
    """The same on SqueezeNet's float maps (no labels): tiles equal to a re-run's."""
    from dissect import services
    from tests.dissect.pipeline.conftest import SMALL

    run = services.run_create(
        network=tiny_network, image_set=image_set, layers=[SMALL, "features.1"], top_k=4,
        controls=1, shard_size=5, batch_size=4,
    )  # fmt: skip
    with django_capture_on_commit_callbacks(execute=True):
        services.run_start(run=run)
    stored = dict(UnitImage.objects.filter(unit__layer__run=run).values_list("id", "tile_path"))
    monkeypatch.setattr("dissect.services.rendering.stored_maps", lambda run_id: None)
    DissectionRun.objects.filter(pk=run.pk).update(status="running")
    services.run_render(run_id=run.pk)
    rerun = dict(UnitImage.objects.filter(unit__layer__run=run).values_list("id", "tile_path"))
    same = sum(stored[k] == rerun[k] for k in stored)
    # float16 storage moves a mask pixel only within 2**-11 of the unit's threshold: 398 of 400
    # tiles were the same file here; 95 % leaves room for other CPUs' float32 summation order.
    assert len(stored) == 80 * 5 and same / len(stored) >= 0.95, (same, len(stored))


def test_comparison_size_and_denominator_are_options(
    color_setup, django_capture_on_commit_callbacks
):
    from dissect.services.extraction import auto_label_counts

    run = _run(
        color_setup, django_capture_on_commit_callbacks,
        options={"iou_px": 16, "iou_denominator": "category"},
    )  # fmt: skip
    assert run.status == "done", run.error
    assert run.progress["auto_label"]["resized"] == 0  # a chosen size is not "another size"
    rows = auto_label_counts(run=run)
    # Whole-image (scene) labels cover every pixel of their images at 16 x 16 px.
    scene = [r for r in rows if r["category"] == "scene"]
    assert scene and all(r["label_area"] % 256 == 0 for r in scene)
    assert all(r["label_area"] <= 40 * 256 for r in rows)
    assert {r["denominator"] for r in rows} == {"category"}
    assert _labels(run)[(0, "object")][0] == "red box"
