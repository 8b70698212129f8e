"""Registering a network without weights: refused unless --random-init, then marked untrained on
the pages that show the network."""

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from dissect.models import DissectionRun, Layer, Network, Unit


def _register(*args) -> str:
    from io import StringIO

    out = StringIO()
    call_command("register_network", *args, stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_no_checkpoint_is_refused_with_the_way_on():
    with pytest.raises(CommandError) as error:
        _register("tv-alexnet", "--arch", "alexnet")
    message = str(error.value)
    assert "random weights" in message and "--checkpoint" in message and "--random-init" in message
    assert "alexnet_places365.pth.tar" in message and "docs/pipeline.md" in message
    assert not Network.objects.filter(name="tv-alexnet").exists()


@pytest.mark.django_db
def test_random_init_registers_an_untrained_network():
    out = _register("tv-squeeze", "--arch", "squeezenet1_1", "--random-init")
    network = Network.objects.get(name="tv-squeeze")
    assert network.is_untrained and "UNTRAINED (random weights)" in out
    assert network.weights_sha256 == "" and network.checkpoint_path == ""


@pytest.mark.django_db
def test_a_checkpoint_or_packaged_weights_are_not_untrained(tiny_network):
    from dissect.services.networks import network_by_name

    assert not tiny_network.is_untrained
    demo = network_by_name("demo-places")
    assert not demo.is_untrained and demo.weights_sha256


@pytest.mark.django_db
def test_untrained_is_marked_on_the_network_run_and_unit_pages(client, make_user):
    _register("tv-squeeze", "--arch", "squeezenet1_1", "--random-init")
    network = Network.objects.get(name="tv-squeeze")
    run = DissectionRun.objects.create(
        network=network, layers=["features.3"], status="done", parameters={"top_k": 4}
    )
    layer = Layer.objects.create(run=run, name="features.3", order=0, unit_count=1)
    unit = Unit.objects.create(layer=layer, index=0)
    client.force_login(make_user("researcher"))
    pages = [
        reverse("dissect:run-list"),
        reverse("dissect:run-detail", args=[run.pk]),
        reverse("dissect:layer-detail", args=[run.pk, layer.name]),
        reverse("dissect:unit-detail", args=[run.pk, layer.name, 0]),
        reverse("labels:unit", args=[unit.pk]),
        reverse("labels:categories", args=[network.name]),
    ]
    for url in pages:
        response = client.get(url)
        assert response.status_code == 200, url
        assert b"untrained (random weights)" in response.content, url
