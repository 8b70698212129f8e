"""Verification tasks through the campaign doors (issue 16): the create_campaign command and the
API take VERIFICATION_SPEC's parameters; a bad value or a label source that labeled nothing is
refused with one message and leaves no campaign behind."""

import pytest
from django.core.management import CommandError, call_command

from annotate.crowd.models import Campaign
from dissect import models as dm
from tests.annotate.crowd.test_verification import build_verification_campaign
from tests.color_world import color_network

pytestmark = pytest.mark.django_db


@pytest.fixture
def run(tmp_path, monkeypatch):
    """The color-world run, with rendered-tile rows so labeling tasks can be made too."""
    campaign = build_verification_campaign(tmp_path, images=5, checks=0)
    run = campaign.run
    campaign.delete()
    images = list(dm.Image.objects.filter(image_set=run.image_set))
    for unit in dm.Unit.objects.filter(layer__run=run):
        for rank, image in enumerate(images[:13]):
            kind, r = ("top", rank) if rank < 10 else ("control", rank - 10)
            dm.UnitImage.objects.create(
                unit=unit, image=image, kind=kind, rank=r, score=1.0, tile_path=f"t/{rank}.jpg"
            )
    net = color_network()
    monkeypatch.setattr("dissect.services.networks.network_load", lambda network: net)
    return run


def test_the_command_adds_verification_tasks_for_automatic_labels(run, capsys):
    call_command("create_campaign", str(run.pk), "--layers", "conv", "--tiles", "13",
                 "--verify-source", "auto", "--verify-images", "6")  # fmt: skip
    campaign = Campaign.objects.get()
    assert campaign.tasks.count() == 4 and campaign.verification_tasks.count() == 3
    assert all(t.items.count() == 6 + 4 for t in campaign.verification_tasks.all())
    assert "3 verification tasks" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--verify-source", "auto", "--verify-images", "2"], "verify_images: give"),
        (["--verify-source", "sometimes"], "verify_source: give"),
        (["--verify-source", "crowd"], "no unit of these layers has a crowd label"),
    ],
)
def test_the_command_refuses_bad_verification_options(run, args, message):
    with pytest.raises(CommandError, match=message):
        call_command("create_campaign", str(run.pk), "--layers", "conv", "--tiles", "13", *args)
    assert not Campaign.objects.exists()


def test_the_api_refuses_a_bad_verification_option_by_field(run, client, make_user):
    client.force_login(make_user("researcher"))
    body = {"run": run.pk, "layers": ["conv"], "tiles_per_task": 13, "verify_images": 9999}
    response = client.post("/api/crowd/campaigns/", body, content_type="application/json")
    assert response.status_code == 400 and "verify_images" in response.json()["field"]
    assert not Campaign.objects.exists()
    body["verify_images"], body["verify_source"] = 5, "auto"
    response = client.post("/api/crowd/campaigns/", body, content_type="application/json")
    assert response.status_code == 201
    assert Campaign.objects.get().verification_tasks.count() == 3
