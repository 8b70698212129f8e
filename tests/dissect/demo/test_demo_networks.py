"""The committed demo networks: they load by name, keep their recorded accuracy, fail clearly."""

import json
import shutil

import numpy as np
import pytest
import torch

from dissect.demo import networks
from dissect.demo.networks import (
    DEMO_NETWORK_NAMES,
    NETWORK_VARIANT,
    DemoNetworkError,
    load_demo_network,
    read_manifest,
)
from dissect.demo.training import accuracy
from dissect.demo.world import class_names, render_arrays
from dissect.hashing import sha256_file

FRESH_SEED = 424242  # never used for training or validation


@pytest.mark.parametrize("name", DEMO_NETWORK_NAMES)
def test_committed_checkpoint_matches_manifest_and_loads(name):
    entry = read_manifest()["networks"][name]
    path = networks.CHECKPOINT_DIR / entry["file"]
    assert path.stat().st_size <= 10 * 1024 * 1024
    assert sha256_file(path) == entry["sha256"]
    assert entry["command"].startswith(f"python manage.py train_demo_network {name}")
    model, names, prep, aliases, sha = load_demo_network(name)
    assert sha == entry["sha256"]
    assert not model.training
    assert names == list(class_names(NETWORK_VARIANT[name]))
    assert prep["input_size"] == 128 and len(prep["mean"]) == len(prep["std"]) == 3
    assert set(aliases) == {"conv1", "conv2", "conv3", "conv4", "conv5", "pool1", "pool2", "pool5"}
    modules = dict(model.named_modules())
    assert all(path in modules for path in aliases.values())
    with torch.inference_mode():
        assert model(torch.zeros(2, 3, 128, 128)).shape == (2, len(names))


@pytest.mark.parametrize("name", DEMO_NETWORK_NAMES)
def test_recorded_accuracy_holds_on_fresh_images(name):
    entry = read_manifest()["networks"][name]
    model, *_ = load_demo_network(name)
    images, classes = render_arrays(FRESH_SEED, 0, 500, variant=NETWORK_VARIANT[name])
    measured = accuracy(model, images, classes)
    assert abs(measured - entry["val_accuracy"]) <= 0.03, (measured, entry["val_accuracy"])


def test_networks_meet_the_accuracy_targets():
    """The issue's target for scenes is 85% (chance: 10% for scenes, 3.6% for objects;
    docs/demo-world.md has the numbers)."""
    networks_ = read_manifest()["networks"]
    assert networks_["demo-places"]["val_accuracy"] >= 0.85
    assert networks_["demo-objects"]["val_accuracy"] >= 0.9


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(DemoNetworkError, match="demo-places, demo-objects"):
        load_demo_network("places365")


@pytest.fixture
def checkpoint_copy(tmp_path, monkeypatch):
    """The checkpoints folder copied to tmp and used instead of the committed one."""
    copy = tmp_path / "checkpoints"
    shutil.copytree(networks.CHECKPOINT_DIR, copy)
    monkeypatch.setattr(networks, "CHECKPOINT_DIR", copy)
    monkeypatch.setattr(networks, "MANIFEST_PATH", copy / "manifest.json")
    return copy


def test_sha256_mismatch_says_how_to_retrain(checkpoint_copy):
    manifest = json.loads((checkpoint_copy / "manifest.json").read_text())
    manifest["networks"]["demo-places"]["sha256"] = "0" * 64
    (checkpoint_copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(DemoNetworkError, match="python manage.py train_demo_network demo-places"):
        load_demo_network("demo-places")


def test_corrupt_checkpoint_says_how_to_retrain(checkpoint_copy):
    path = checkpoint_copy / "demo-objects.pt"
    data = bytearray(path.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 64] = np.random.default_rng(0).bytes(64)
    path.write_bytes(bytes(data[: len(data) - 100]))
    # Make the manifest agree with the damaged file, so that loading itself must fail.
    manifest = json.loads((checkpoint_copy / "manifest.json").read_text())
    manifest["networks"]["demo-objects"]["sha256"] = sha256_file(path)
    (checkpoint_copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(DemoNetworkError, match="cannot be loaded.*train_demo_network demo-objects"):
        load_demo_network("demo-objects")


def test_missing_checkpoint_and_manifest(checkpoint_copy):
    (checkpoint_copy / "demo-places.pt").unlink()
    with pytest.raises(DemoNetworkError, match="missing.*train_demo_network demo-places"):
        load_demo_network("demo-places")
    (checkpoint_copy / "manifest.json").unlink()
    with pytest.raises(DemoNetworkError, match="manifest.json is missing"):
        load_demo_network("demo-objects")


def test_pipeline_loader_finds_the_demo_networks():
    from dissect.networks import load_network

    net = load_network("demo-places")
    assert net.layer_aliases["pool5"] == "features.pool5"
    assert net.class_names[0] == "street"
