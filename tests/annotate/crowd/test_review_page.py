"""The review section of the campaign page: each pending answer links to its unit and shows the
worker's tiles with the marked ones visible as such; a refused review keeps the ticks."""

import re

import pytest
from django.urls import reverse

from annotate.crowd import services
from annotate.crowd.models import Assignment
from dissect.models import UnitImage


@pytest.fixture
def pending(client, make_user, crowd_run):
    """Two submitted answers: each worker marks the controls plus the task's first tile."""
    campaign = services.campaign_create(run=crowd_run, layers=["conv5"], redundancy=2)
    services.campaign_set_status(campaign=campaign, status="live", actor=None)
    answers = []
    for _ in range(2):
        client.force_login(make_user("annotator"))
        started = client.post(reverse("crowd:task-start", args=[campaign.pk]))
        a = Assignment.objects.get(
            pk=int(re.search(r"/assignments/(\d+)/", started["Location"])[1])
        )
        kinds = dict(UnitImage.objects.filter(pk__in=a.task.tile_order).values_list("pk", "kind"))
        controls = [p for p, pk in enumerate(a.task.tile_order) if kinds[pk] == "control"]
        extra = next(p for p, pk in enumerate(a.task.tile_order) if kinds[pk] == "top")
        marked = sorted({*controls, extra})
        client.post(
            reverse("crowd:task", args=[a.pk]),
            {"concept": "tree", "category": "object", "flagged": marked},
        )
        answers.append((a, marked))
    client.force_login(make_user("researcher"))
    return campaign, answers


def _answer_block(html: str, assignment_pk: int) -> str:
    start = html.index(f'value="{assignment_pk}"')
    return html[start : html.index("</td></tr>", start)]


def test_each_pending_answer_links_its_unit_and_shows_its_marked_tiles(client, pending):
    campaign, answers = pending
    html = client.get(reverse("crowd:campaign-detail", args=[campaign.pk])).content.decode()
    for a, marked in answers:
        block = _answer_block(html, a.pk)
        unit = a.task.unit
        url = reverse("dissect:unit-detail", args=[unit.layer.run_id, unit.layer.name, unit.index])
        assert f'href="{url}"' in block
        tiles = re.findall(r'<li class="([^"]*)" title="tile (\d+)', block)
        assert len(tiles) == len(a.task.tile_order)
        flagged = [int(n) - 1 for cls, n in tiles if "flagged" in cls]
        assert flagged == marked and f"{len(marked)} of {len(tiles)} marked" in block
        assert block.count('<img src="/tasks/tile/') == len(tiles)  # the task's signed tile URLs


def test_reject_without_a_reason_keeps_the_ticks_and_says_what_to_do(client, pending):
    campaign, answers = pending
    first = answers[0][0]
    response = client.post(
        reverse("crowd:campaign-review", args=[campaign.pk]),
        {"assignment": [first.pk], "decision": "reject", "reason": ""},
    )
    html = response.content.decode()
    assert response.status_code == 400
    assert "still ticked" in html and "type the reason below and press Reject selected" in html
    assert f'value="{first.pk}" aria-label="Select answer {first.pk}" checked' in html
    other = answers[1][0]
    assert f'value="{other.pk}" aria-label="Select answer {other.pk}">' in html  # not ticked
    assert Assignment.objects.get(pk=first.pk).status == Assignment.Status.SUBMITTED


def test_nothing_ticked_keeps_the_reason(client, pending):
    campaign, _ = pending
    response = client.post(
        reverse("crowd:campaign-review", args=[campaign.pk]),
        {"decision": "reject", "reason": "blurry answers"},
    )
    html = response.content.decode()
    assert response.status_code == 400 and "tick at least one answer" in html
    assert 'value="blurry answers"' in html


@pytest.mark.parametrize(
    "decision, said", [("reject", "Rejected 1 answer(s)."), ("approve", "Approved 1 answer(s).")]
)
def test_a_done_review_says_what_was_done(client, pending, decision, said):
    campaign, answers = pending
    first = answers[0][0]
    response = client.post(
        reverse("crowd:campaign-review", args=[campaign.pk]),
        {"assignment": [first.pk], "decision": decision, "reason": "name the surface"},
        follow=True,
    )
    assert said in response.content.decode()
    expected = Assignment.Status.REJECTED if decision == "reject" else Assignment.Status.APPROVED
    assert Assignment.objects.get(pk=first.pk).status == expected
