"""The demo-world management commands are thin wrappers that work end to end on small inputs."""

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from dissect.demo.world import read_demo_world


def test_make_demo_world_writes_a_readable_world(tmp_path):
    out = StringIO()
    call_command(
        "make_demo_world",
        str(tmp_path / "w"),
        "--n-images",
        "3",
        "--seed",
        "5",
        "--variant",
        "objects",
        "--size",
        "64",
        stdout=out,
        verbosity=0,
    )
    world = read_demo_world(tmp_path / "w")
    assert len(world.rows) == 3 and world.meta["size"] == 64
    assert "wrote 3 objects images" in out.getvalue()


def test_train_demo_network_refuses_unknown_names():
    with pytest.raises(CommandError, match="demo-places, demo-objects"):
        call_command("train_demo_network", "alexnet", verbosity=0)


def test_emergence_prints_the_table_and_writes_unit_labels(tmp_path):
    out = StringIO()
    call_command(
        "emergence",
        "--networks",
        "demo-places",
        "--layers",
        "conv5",
        "pool5",
        "--n-images",
        "20",
        "--json",
        str(tmp_path / "units.json"),
        stdout=out,
        verbosity=0,
    )
    text = out.getvalue()
    assert "| demo-places | conv5 | 128 |" in text and "| demo-places | pool5 | 128 |" in text
    units = json.loads((tmp_path / "units.json").read_text())
    assert len(units["demo-places"]["pool5"]) == 128
    assert {"unit", "label", "category", "iou"} <= set(units["demo-places"]["pool5"][0])


def test_emergence_reports_unknown_networks_and_layers():
    with pytest.raises(CommandError, match="unknown demo network"):
        call_command("emergence", "--networks", "vgg16", "--n-images", "2", verbosity=0)
    with pytest.raises(CommandError, match="unknown layers"):
        call_command(
            "emergence",
            "--networks",
            "demo-objects",
            "--layers",
            "fc9",
            "--n-images",
            "2",
            verbosity=0,
        )


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_train_demo_network_writes_a_loadable_checkpoint_and_its_recipe(
    tmp_path, monkeypatch, precision
):
    """A tiny training run: the checkpoint loads by name from its folder, the manifest entry
    matches the file and records the command that reproduces it, byte for byte."""
    import torch

    from dissect.demo import networks
    from dissect.hashing import sha256_file

    if precision == "bf16" and not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        pytest.skip("this CPU has no native bfloat16 kernels")
    args = ["--n-train", "64", "--n-val", "32", "--epochs", "1", "--batch-size", "32"]
    args += ["--precision", precision]
    out = StringIO()
    call_command(
        "train_demo_network", "demo-objects", *args, "--out-dir", str(tmp_path / "a"), stdout=out
    )
    assert "demo-objects: epoch 1/1" in out.getvalue()
    entry = json.loads((tmp_path / "a" / "manifest.json").read_text())["networks"]["demo-objects"]
    assert entry["precision"] == precision and entry["n_train"] == 64
    assert entry["sha256"] == sha256_file(tmp_path / "a" / "demo-objects.pt")
    assert entry["command"].endswith(f"--precision {precision}")

    monkeypatch.setattr(networks, "CHECKPOINT_DIR", tmp_path / "a")
    monkeypatch.setattr(networks, "MANIFEST_PATH", tmp_path / "a" / "manifest.json")
    model, names, *_ = networks.load_demo_network("demo-objects")
    assert model(torch.zeros(1, 3, 128, 128)).shape == (1, len(names))

    recorded = entry["command"].split()[3:]  # the recorded flags, run again elsewhere
    call_command("train_demo_network", *recorded, "--out-dir", str(tmp_path / "b"), stdout=out)
    again = json.loads((tmp_path / "b" / "manifest.json").read_text())["networks"]["demo-objects"]
    assert again["sha256"] == entry["sha256"]
