"""Issue 12, point 9: a 10,000-character concept or one with a NUL byte posted to the task page
is refused under the concept field (before: "Tiles: reload the page."); an answer in another
script, composed or decomposed, is saved with its concept (point 8)."""

import re

import pytest
from django.urls import reverse

from annotate.crowd import services
from annotate.crowd.models import Answer, Assignment
from dissect.models import UnitImage

pytestmark = pytest.mark.django_db


@pytest.fixture
def campaign(crowd_run):
    c = services.campaign_create(run=crowd_run, layers=["conv5"])
    return services.campaign_set_status(campaign=c, status="live", actor=None)


@pytest.fixture
def assignment(client, make_user, campaign):
    client.force_login(make_user("annotator"))
    response = client.post(reverse("crowd:task-start", args=[campaign.pk]))
    return Assignment.objects.get(
        pk=int(re.search(r"/assignments/(\d+)/", response["Location"])[1])
    )


def _controls(assignment) -> list[int]:
    kinds = dict(
        UnitImage.objects.filter(pk__in=assignment.task.tile_order).values_list("pk", "kind")
    )
    return [p for p, pk in enumerate(assignment.task.tile_order) if kinds[pk] == "control"]


@pytest.mark.parametrize(
    ("concept", "says"),
    [("x" * 10_000, "at most 40 characters"), ("dog\x00", "use only letters"), ("\x00", "")],
)
def test_hostile_concepts_get_a_concept_field_message(client, assignment, concept, says):
    response = client.post(
        reverse("crowd:task", args=[assignment.pk]),
        {"concept": concept, "category": "object", "flagged": _controls(assignment)},
    )
    html = response.content.decode()
    assert response.status_code == 400
    assert "Concept: " in html and says in html
    assert "Tiles:" not in html
    assert not Answer.objects.exists()


def test_a_broken_tile_mark_still_says_reload(client, assignment):
    response = client.post(
        reverse("crowd:task", args=[assignment.pk]),
        {"concept": "sky", "category": "region", "flagged": ["999"]},
    )
    assert response.status_code == 400 and "reload" in response.content.decode()


@pytest.mark.parametrize("concept", ["e\u0301cole", "\u00e9cole"])
def test_a_decomposed_answer_is_saved_with_the_composed_concept(client, assignment, concept):
    response = client.post(
        reverse("crowd:task", args=[assignment.pk]),
        {"concept": concept, "category": "scene", "flagged": _controls(assignment)},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    answer = Answer.objects.get()
    assert answer.concept is not None and answer.concept.name == "\u00e9cole"
    assert answer.concept_text == "\u00e9cole"
