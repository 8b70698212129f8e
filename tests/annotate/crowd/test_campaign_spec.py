"""One schema per parameter set (annotate.crowd.spec): the same bad value gets the same
message through every door: the service, the form, the API and the command."""

import pytest
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from annotate.crowd import services
from annotate.crowd.forms import CampaignForm
from annotate.crowd.models import Campaign
from annotate.crowd.spec import CAMPAIGN_SPEC

pytestmark = pytest.mark.django_db

BAD = [
    ("redundancy", 10**9),
    ("lease_minutes", 10**7),
    ("seed", 2**63),
    ("max_tasks_per_worker", -1),
    ("min_gold_accuracy", 1.5),
    ("tiles_per_task", 2**31),
]


@pytest.mark.parametrize("name, value", BAD)
def test_the_same_bad_value_gets_the_same_message_at_every_door(name, value, crowd_run, make_user):
    message = CAMPAIGN_SPEC[name].message()
    assert message.startswith(f"{name}: give ")

    with pytest.raises(services.CrowdError) as service:
        services.campaign_create(run=crowd_run, layers=["conv5"], **{name: value})
    assert str(service.value) == message and service.value.field == name

    form = CampaignForm(data={"run": crowd_run.pk, "layers": "conv5", name: str(value)})
    assert not form.is_valid() and form.errors[name] == [message]

    api = APIClient()
    api.force_authenticate(make_user("researcher"))
    response = api.post(
        "/api/crowd/campaigns/", {"run": crowd_run.pk, "layers": ["conv5"], name: value},
        format="json",
    )  # fmt: skip
    assert response.status_code == 400
    assert response.json()[name] == [message]
    assert response.json()["field"] == name and response.json()["detail"] == message

    with pytest.raises(CommandError) as command:
        call_command("create_campaign", str(crowd_run.pk), "--layers", "conv5",
                     CAMPAIGN_SPEC[name].flag(), str(value))  # fmt: skip
    assert str(command.value) == message


def test_every_campaign_parameter_has_bounds_a_default_that_passes_and_help():
    for param in CAMPAIGN_SPEC:
        assert param.help, param.name
        assert param.problem(param.default) is None, param.name
        if param.kind in (int, float):
            assert param.high is not None and param.high < 2**63, param.name


def test_the_command_makes_a_campaign_with_the_spec_defaults(crowd_run):
    call_command("create_campaign", str(crowd_run.pk), "--layers", "conv5", "--tiles", "17",
                 "--controls", "3")  # fmt: skip
    campaign = Campaign.objects.get(run=crowd_run)
    assert (campaign.tiles_per_task, campaign.redundancy, campaign.lease_minutes) == (17, 3, 20)
