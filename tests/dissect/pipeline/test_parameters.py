"""One schema per parameter set (dissect.parameters): the same bad value gets the same message
through every door: the service, the form, the API and the command."""

import pytest
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from dissect import services
from dissect.forms import RunForm
from dissect.models import ImageSet, Network
from dissect.parameters import RUN_OPTIONS, RUN_PARAMETERS

pytestmark = pytest.mark.django_db

BAD = [("top_k", 10**9), ("seed", 2**63), ("tile_px", 2**31), ("workers", -1)]


@pytest.fixture
def rows(tmp_path):
    network = Network.objects.create(name="doors-net", arch="alexnet")
    image_set = ImageSet.objects.create(name="doors-images", root=str(tmp_path))
    return network, image_set


@pytest.mark.parametrize("name, value", BAD)
def test_the_same_bad_value_gets_the_same_message_at_every_door(
    name, value, rows, tmp_path, make_user
):
    network, image_set = rows
    message = RUN_PARAMETERS[name].message()
    assert message.startswith(f"{name}: give a whole number from ")

    with pytest.raises(services.PipelineError) as service:
        services.run_create(network=network, image_set=image_set, layers=["conv5"], **{name: value})
    assert str(service.value) == message and service.value.field == name

    form = RunForm(
        data={
            "network": network.name,
            "image_set": image_set.name,
            "layers": "conv5",
            name: str(value),
        }  # fmt: skip
    )
    assert not form.is_valid() and form.errors[name] == [message]

    api = APIClient()
    api.force_authenticate(make_user("researcher"))
    response = api.post(
        "/api/dissect/runs/",
        {"network": network.name, "image_set": image_set.name, "layers": ["conv5"], name: value},
        format="json",
    )
    assert response.status_code == 400
    assert response.json()[name] == [message]
    assert response.json()["field"] == name and response.json()["detail"] == message

    flag = RUN_PARAMETERS[name].flag()
    with pytest.raises(CommandError) as command:
        call_command("dissect", "--network", network.name, "--images", str(tmp_path),
                     "--layers", "conv5", flag, str(value))  # fmt: skip
    assert str(command.value) == message


def test_an_advanced_option_gets_the_same_message_at_the_service_api_and_command(
    rows, tmp_path, make_user
):
    network, image_set = rows
    message = RUN_OPTIONS["quantile"].message()
    with pytest.raises(services.PipelineError, match="^quantile: give a number between 0 and 1"):
        services.run_create(
            network=network, image_set=image_set, layers=["conv5"], options={"quantile": 1.5}
        )
    api = APIClient()
    api.force_authenticate(make_user("researcher"))
    response = api.post(
        "/api/dissect/runs/",
        {"network": network.name, "image_set": image_set.name, "layers": ["conv5"],
         "options": {"quantile": 1.5}},
        format="json",
    )  # fmt: skip
    assert response.status_code == 400 and response.json()["options"] == {"quantile": [message]}
    with pytest.raises(CommandError) as command:
        call_command("dissect", "--network", network.name, "--images", str(tmp_path),
                     "--layers", "conv5", "--quantile", "1.5")  # fmt: skip
    assert str(command.value) == message


def test_every_parameter_has_bounds_a_default_that_passes_and_help():
    for spec in (RUN_PARAMETERS, RUN_OPTIONS):
        for param in spec:
            assert param.help, param.name
            assert param.problem(param.default) is None, param.name
            if param.kind in (int, float):
                assert param.high is not None and param.high < 2**63, param.name
