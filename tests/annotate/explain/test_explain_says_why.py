"""explain's refusals name the real reason; its output says what kind of classes the network has
and what a demo or untrained network knows (page, command and API payload)."""

import json

import numpy as np
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse
from PIL import Image

from annotate.explain.selectors import classifier_kind, explain_refusal, network_notes
from annotate.labels.models import UnitLabel
from dissect.models import AutoLabel, DissectionRun, Layer, Network, Unit

pytestmark = pytest.mark.django_db


def _network(name, **fields):
    fields.setdefault("arch", "alexnet")
    return Network.objects.create(name=name, **fields)


def _units(network, n=2, **run_fields):
    run = DissectionRun.objects.create(
        network=network, layers=["conv5"], status=run_fields.pop("status", "done"), **run_fields
    )
    layer = Layer.objects.create(run=run, name="conv5", order=0, unit_count=n)
    return [
        Unit.objects.create(layer=layer, index=i, threshold=0.0, top_score=1.0) for i in range(n)
    ]


@pytest.fixture
def image(tmp_path):
    path = tmp_path / "photo.png"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (96, 96, 3), dtype=np.uint8)).save(path)
    return path


def test_an_imported_network_is_refused_for_having_no_weights(image):
    network = _network("iclr15-net", source=Network.Source.IMPORTED, weights_sha256="")
    for unit in _units(network, status="imported"):
        UnitLabel.objects.create(
            unit=unit, source="crowd", concept_text="dog", category="object", is_detector=True
        )
    with pytest.raises(CommandError) as refused:
        call_command("explain", str(image), "--network", "iclr15-net", verbosity=0)
    message = str(refused.value)
    assert "has no weights" in message and "2 detector units" in message
    assert "forward pass" in message and "register_network" in message
    assert "no crowd or automatic" not in message


def test_each_missing_label_kind_is_named():
    network = _network("plain-net", checkpoint_path="/x.pt", weights_sha256="ab" * 32)
    assert "no dissection run yet" in explain_refusal(network=network, source="both", min_iou=0.04)
    units = _units(network)
    both = explain_refusal(network=network, source="both", min_iou=0.04)
    assert "no crowd labels yet" in both and "no automatic labels" in both
    UnitLabel.objects.create(unit=units[0], source="crowd", concept_text="dog", is_detector=False)
    AutoLabel.objects.create(unit=units[0], category="", label="sky", iou=0.02)
    crowd = explain_refusal(network=network, source="crowd", min_iou=0.04)
    assert "1 units have crowd labels but none is a detector yet" in crowd
    auto = explain_refusal(network=network, source="auto", min_iou=0.04)
    assert "best automatic label has IoU 0.020, below the IoU level 0.04" in auto


def test_object_networks_say_object_class_and_demo_networks_say_what_they_know():
    from dissect.services.networks import network_by_name

    objects = network_by_name("demo-objects")
    places = network_by_name("demo-places")
    assert classifier_kind(network=objects) == "object class"
    assert classifier_kind(network=places) == "scene"
    assert classifier_kind(network=_network("in-net", training_data="ImageNet")) == "object class"
    (note,) = network_notes(network=objects)
    assert "only on the demo world" in note and "photos" in note and "mean nothing" in note
    untrained = _network("rand-net", source=Network.Source.TORCHVISION)
    assert "untrained (random weights" in network_notes(network=untrained)[0]


def test_the_command_and_the_page_carry_the_demo_note(image, client, make_user):
    from dissect.services.networks import network_by_name

    network = network_by_name("demo-objects")
    for index, unit in enumerate(_units(network, n=2)):
        AutoLabel.objects.create(unit=unit, category="", label=f"thing{index}", iou=0.3)
    out = image.parent / "out"
    from io import StringIO

    printed = StringIO()
    call_command(
        "explain", str(image), "--network", "demo-objects", "--labels", "auto", "--out", str(out),
        stdout=printed, verbosity=0,
    )  # fmt: skip
    assert "note: demo-objects is a demo network" in printed.getvalue()
    data = json.loads((out / "photo.json").read_text())
    assert data["class_kind"] == "object class" and "demo world" in data["notes"][0]

    client.force_login(make_user("researcher"))
    with image.open("rb") as upload:
        page = client.post(
            reverse("explain:page"),
            {"network": "demo-objects", "labels": "auto", "min_iou": "0.04", "image": upload},
        )
    html = page.content.decode()
    assert page.status_code == 200, html[-2000:]
    assert "<h3>Object class</h3>" in html and "<h3>Scene</h3>" not in html
    assert "demo-objects is a demo network" in html
