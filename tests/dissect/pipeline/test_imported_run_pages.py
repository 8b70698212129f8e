"""An imported run's pages (no weights, no pipeline) show no empty fields or 0/0 bars: they say
what an import is and what is not there."""

import re

import pytest
from django.urls import reverse

from dissect.models import DissectionRun, Layer, Network, Unit


@pytest.mark.django_db
def test_imported_run_and_unit_pages_say_imported_instead_of_blanks(client, make_user):
    network = Network.objects.create(name="paper-net", arch="alexnet", source="imported")
    run = DissectionRun.objects.create(
        network=network, layers=["conv5"], status="imported", parameters={"file": "x.mat"}
    )
    layer = Layer.objects.create(run=run, name="conv5", order=0, unit_count=2)
    Unit.objects.create(layer=layer, index=0)
    client.force_login(make_user("researcher"))
    page = client.get(reverse("dissect:run-detail", args=[run.pk])).content.decode()
    assert "Imported — no pipeline stages" in page
    assert not re.search(r"\b0\s*/\s*0\b", page) and "None" not in page
    assert "Explain an image with this network" not in page  # it has no weights
    layer_page = client.get(
        reverse("dissect:layer-detail", args=[run.pk, "conv5"])
    ).content.decode()
    assert "Imported layer — no pipeline stages" in layer_page and "no tiles yet" not in layer_page
    unit = client.get(reverse("dissect:unit-detail", args=[run.pk, "conv5", 0])).content.decode()
    assert "Imported unit" in unit and "None" not in unit
    assert "Top images" not in unit and "Mask recipe" not in unit
