"""An image set too small for top-K plus controls: the default K adapts (and says so on the command
line, the run page and in the API); an explicit K that cannot fit is refused with the numbers and
what to do. Controls are never dropped: K + controls never exceeds the usable images."""

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from dissect.services import PipelineError
from dissect.services.runs import images_needed, top_k_fit

from .conftest import SMALL


def test_images_needed_is_ten_per_top_image_and_room_for_the_controls():
    assert images_needed(top_k=60, controls=3) == 600
    assert images_needed(top_k=1, controls=20) == 21


@pytest.mark.parametrize(
    ("n", "top_k", "controls", "expected_k"),
    [
        (1000, None, 3, 60),  # large enough: the default as is
        (600, None, 3, 60),
        (300, None, 3, 30),  # a tenth of the set
        (60, None, 3, 10),  # the 60 images: top-10 + 3 controls, not top-60 + none
        (12, None, 3, 9),  # room for the controls first
        (1000, 60, 3, 60),
        (100, 60, 3, 60),  # explicit and fits: kept, with a warning
    ],
)
def test_top_k_fit(n, top_k, controls, expected_k):
    k, notes = top_k_fit(n_images=n, top_k=top_k, controls=controls)
    assert k == expected_k
    assert k + controls <= n  # controls are never dropped
    assert bool(notes) == (n < images_needed(top_k=top_k or 60, controls=controls))
    if top_k is None and notes:
        assert f"top-{k} + {controls} controls" in notes[0] and f"{n} usable images" in notes[0]


def test_top_k_fit_refuses_with_the_numbers_and_what_to_do():
    with pytest.raises(PipelineError) as refused:
        top_k_fit(n_images=60, top_k=60, controls=3, image_set="mine")
    message = str(refused.value)
    assert "image set mine has 60 usable images" in message
    assert "top-60 + 3 controls" in message and "at least 63" in message
    # The hint names the K that leaving top-K out picks (one rule for both), not another number.
    adapted, _ = top_k_fit(n_images=60, top_k=None, controls=3, image_set="mine")
    assert "600 recommended" in message and f"top-K {adapted}, what leaving it out picks" in message
    assert refused.value.field == "top_k"
    with pytest.raises(PipelineError, match="too few for even one top image"):
        top_k_fit(n_images=3, top_k=None, controls=3)


@pytest.mark.django_db
def test_run_create_adapts_the_default_k_and_the_page_and_api_say_so(
    tiny_network, image_set, client, make_user
):
    from dissect.services import run_create

    run = run_create(network=tiny_network, image_set=image_set, layers=[SMALL])  # 12 images
    assert run.parameters["top_k"] == 9 and run.parameters["controls"] == 3
    [note] = run.parameters["notes"]
    assert "top-K adapted" in note and "12 usable images" in note
    client.force_login(make_user("researcher"))
    page = client.get(f"/runs/{run.pk}/").content.decode()
    assert "top 9 + 3 controls" in page and "top-K adapted" in page
    api = client.get(f"/api/dissect/runs/{run.pk}/").json()
    assert api["notes"] == [note] and api["parameters"]["top_k"] == 9


@pytest.mark.django_db
def test_run_create_refuses_an_explicit_k_that_leaves_no_room_for_controls(
    tiny_network, image_set, client, make_user
):
    from dissect.models import DissectionRun
    from dissect.services import run_create

    with pytest.raises(PipelineError, match="12 usable images, too few for top-60 \\+ 3 controls"):
        run_create(network=tiny_network, image_set=image_set, layers=[SMALL], top_k=60)
    assert not DissectionRun.objects.exists()
    client.force_login(make_user("researcher"))
    body = {"network": "tiny", "image_set": image_set.name, "layers": [SMALL], "start": False}
    refused = client.post(
        "/api/dissect/runs/", {**body, "top_k": 60}, content_type="application/json"
    )
    assert refused.status_code == 400 and "too few for top-60" in str(refused.json())
    adapted = client.post("/api/dissect/runs/", body, content_type="application/json")
    assert adapted.status_code == 201, adapted.content
    assert adapted.json()["parameters"]["top_k"] == 9 and adapted.json()["notes"]


@pytest.mark.django_db
def test_the_command_line_says_when_k_was_adapted(tiny_network, image_folder, monkeypatch):
    from io import StringIO

    from dissect.management.commands.dissect import Command

    monkeypatch.setattr(Command, "_execute", lambda self, run, start, no_wait: None)
    out = StringIO()
    call_command(
        "dissect", "--network", "tiny", "--images", str(image_folder), "--layers", SMALL,
        stdout=out,
    )  # fmt: skip
    text = out.getvalue()
    assert "top-9 + 3 controls per unit" in text and "note: top-K adapted" in text
    with pytest.raises(CommandError, match="too few for top-60"):
        call_command(
            "dissect", "--network", "tiny", "--images", str(image_folder), "--layers", SMALL,
            "--top-k", "60", stdout=StringIO(),
        )  # fmt: skip
