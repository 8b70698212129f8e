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
