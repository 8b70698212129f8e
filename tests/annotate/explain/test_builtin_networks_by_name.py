"""Built-in networks by name: on a fresh install `explain --network demo-places IMAGE` resolves the
name as `dissect --network demo-places` does (the built-in network is registered on first use)."""

import json

import numpy as np
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from PIL import Image

pytestmark = pytest.mark.django_db


@pytest.fixture
def image(tmp_path):
    path = tmp_path / "photo.png"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (96, 96, 3), dtype=np.uint8)).save(path)
    return path


@pytest.fixture
def demo_places_loadable():
    from dissect.networks import NetworkLoadError, load_network

    try:
        load_network("demo-places")
    except NetworkLoadError as exc:
        pytest.skip(f"demo-places checkpoint not available: {exc}")


def test_network_by_name_registers_a_built_in_network_once(demo_places_loadable):
    from dissect.models import Network
    from dissect.services.networks import network_by_name

    assert not Network.objects.exists()  # a fresh install
    first = network_by_name("demo-places")
    assert first.source == Network.Source.BUILTIN and first.weights_sha256
    assert first.training_data == "demo world (scenes)"
    assert network_by_name("demo-places").pk == first.pk
    assert Network.objects.count() == 1
    assert network_by_name("no-such-net") is None


def test_explain_on_a_fresh_install_knows_demo_places_and_says_what_to_do(
    demo_places_loadable, image
):
    from dissect.models import Network

    with pytest.raises(CommandError) as refused:
        call_command("explain", str(image), "--network", "demo-places", verbosity=0)
    message = str(refused.value)
    assert "no network" not in message
    assert "not dissected yet" in message and "manage.py demo" in message
    assert Network.objects.get(name="demo-places").source == Network.Source.BUILTIN


def test_explain_with_an_unknown_name_lists_registered_and_built_in_networks(image):
    with pytest.raises(
        CommandError, match=r"no network 'nope'.*built in: demo-places, demo-objects"
    ):
        call_command("explain", str(image), "--network", "nope", verbosity=0)


def test_explain_by_built_in_name_works_once_its_units_are_labeled(demo_places_loadable, image):
    """The row registered on first use is the one runs and labels hang on: explain then works."""
    from dissect.models import AutoLabel, DissectionRun, Layer, Network, Unit
    from dissect.services.networks import network_by_name

    network = network_by_name("demo-places")
    run = DissectionRun.objects.create(
        network=network, layers=["conv5"], status=DissectionRun.Status.DONE
    )
    layer = Layer.objects.create(run=run, name="conv5", order=0, unit_count=4)
    for index, label in enumerate(["sky", "grass", "road", "wall"]):
        unit = Unit.objects.create(layer=layer, index=index, threshold=0.0, top_score=1.0)
        AutoLabel.objects.create(unit=unit, category="", label=label, iou=0.3)
    out = image.parent / "out"
    call_command(
        "explain", str(image), "--network", "demo-places", "--labels", "auto", "--out", str(out),
        verbosity=0,
    )  # fmt: skip
    data = json.loads((out / "photo.json").read_text())
    assert data["network"] == "demo-places"
    assert (out / "photo.overlay.png").is_file()
    assert Network.objects.filter(name="demo-places").count() == 1
