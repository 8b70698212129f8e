"""Verification tasks (issue 16): creation from automatic labels over the color world (a real
forward pass, known truth), the page one image at a time, bad inputs refused with a message and
nothing stored twice, and the adaptive-redundancy update."""

import re

import pytest
from django.urls import reverse

from annotate.crowd import services, verification
from annotate.crowd.models import (
    Campaign,
    VerificationAnswer,
    VerificationAssignment,
    VerificationItem,
    VerificationTask,
)
from dissect import models as dm
from dissect.broden import read_broden
from tests.color_world import THRESHOLD, color_network, write_color_world

pytestmark = pytest.mark.django_db
CONCEPTS = ("red box", "green box", "blue box")


def build_verification_campaign(
    root, *, images: int = 8, checks: int = 1, redundancy: int = 2, thresholds=None
):
    """A live campaign over the color world's conv layer with a verification task per unit
    labeled automatically (units 0-2: red/green/blue box); ``thresholds`` {unit index: level}
    replace the usual threshold."""
    world = write_color_world(root / "color-world", 24, seed=0)
    dataset = read_broden(world)
    network = dm.Network.objects.create(name=f"color-net-{root.name}"[:100], arch="color-net")
    image_set = dm.ImageSet.objects.create(
        name=f"color-{root.name}"[:100], root=str(world / "images"), labels_dir=str(world)
    )
    for row in dataset.rows:
        dm.Image.objects.create(image_set=image_set, path=row.image)
    run = dm.DissectionRun.objects.create(
        network=network, image_set=image_set, layers=["conv"], status=dm.DissectionRun.Status.DONE
    )
    layer = dm.Layer.objects.create(run=run, name="conv", unit_count=4)
    for k in range(4):
        level = (thresholds or {}).get(k, THRESHOLD)
        unit = dm.Unit.objects.create(layer=layer, index=k, threshold=level)
        if k < 3:
            dm.AutoLabel.objects.create(unit=unit, category="", label=CONCEPTS[k], iou=0.6)
    campaign = Campaign.objects.create(
        name="Check labels", run=run, layers=["conv"], redundancy=redundancy, status="live"
    )
    verification.verification_tasks_create(
        campaign=campaign, source="auto", images=images, checks=checks, net=color_network()
    )
    return campaign


@pytest.fixture
def campaign(tmp_path):
    return build_verification_campaign(tmp_path)


@pytest.fixture
def annotator(client, make_user):
    user = make_user("annotator")
    client.force_login(user)
    return user


def test_labeled_units_get_a_task_with_sampled_images_and_planted_checks(campaign):
    tasks = list(campaign.verification_tasks.order_by("unit__index"))
    assert [t.concept for t in tasks] == list(CONCEPTS)  # the dead unit 3 has no label
    for task in tasks:
        items = list(task.items.all())
        sampled = [i for i in items if not i.planted]
        assert len(sampled) == 8 and task.population == 24
        assert sum(1 / i.inclusion_probability for i in sampled) == pytest.approx(24)
        assert sorted(i.position for i in items) == list(range(len(items)))
        assert {i.planted for i in items} >= {"fits", "not"}
    # Creating again adds nothing (one task per unit and label source).
    assert (
        verification.verification_tasks_create(
            campaign=campaign, source="auto", images=8, checks=1, net=color_network()
        )
        == []
    )
    assert VerificationTask.objects.filter(campaign=campaign).count() == 3


def test_no_labels_of_the_source_is_refused_with_what_to_do(campaign):
    with pytest.raises(services.CrowdError, match="no unit of conv has a crowd label"):
        verification.verification_tasks_create(
            campaign=campaign, source="crowd", images=8, net=color_network()
        )


def _start(client, campaign) -> VerificationAssignment:
    response = client.post(reverse("crowd:verify-start", args=[campaign.pk]))
    assert response.status_code == 302
    return VerificationAssignment.objects.get(
        pk=int(response["Location"].rstrip("/").split("/")[-1])
    )


def _token(page: str) -> str:
    return re.search(r'name="item" value="([^"]+)"', page).group(1)


def test_the_page_shows_one_image_and_reveals_nothing_about_it(client, annotator, campaign):
    assignment = _start(client, campaign)
    page = client.get(reverse("crowd:verify", args=[assignment.pk])).content.decode()
    assert f'<strong class="concept">{assignment.task.concept}</strong>' in page
    assert "Image 1 of" in page
    item = VerificationItem.objects.get(task=assignment.task, position=0)
    for secret in (
        "fits",
        "planted",
        "stratum",
        "activation",
        f"{item.activation:.3f}",
        item.tile_path,
    ):
        assert secret not in page
    tile = re.search(r'<img src="([^"]+)"', page).group(1)
    response = client.get(tile)
    assert response.status_code == 200 and response["Content-Type"] == "image/jpeg"
    assert client.get(reverse("crowd:verify-tile", args=["forged"])).status_code == 404


def test_answering_every_image_submits_and_bad_inputs_are_refused(client, annotator, campaign):
    assignment = _start(client, campaign)
    url = reverse("crowd:verify", args=[assignment.pk])
    first = _token(client.get(url).content.decode())
    assert client.post(url, {"item": first, "answer": "yes"}).status_code == 302

    # The same image again: refused, the first answer stands.
    again = client.post(url, {"item": first, "answer": "no"})
    assert again.status_code == 409 and "already answered this image" in again.content.decode()
    assert list(VerificationAnswer.objects.values_list("answer", flat=True)) == ["yes"]

    # An image of another worker's / another unit's task.
    other = VerificationTask.objects.exclude(pk=assignment.task_id).first()
    foreign = verification.tile_token(task_id=other.pk, position=0)
    refused = client.post(url, {"item": foreign, "answer": "yes"})
    assert refused.status_code == 400 and "not part of your task" in refused.content.decode()
    # A forged reference and an answer that is not one of the three.
    assert "not valid" in client.post(url, {"item": "x", "answer": "yes"}).content.decode()
    current = _token(client.get(url).content.decode())
    maybe = client.post(url, {"item": current, "answer": "maybe"})
    assert maybe.status_code == 400 and "yes (y), no (n)" in maybe.content.decode()
    assert VerificationAnswer.objects.count() == 1

    total = assignment.task.items.count()
    for _ in range(total - 1):
        token = _token(client.get(url).content.decode())
        assert client.post(url, {"item": token, "answer": "no"}).status_code == 302
    assignment.refresh_from_db()
    assert assignment.status == "submitted"
    assert VerificationAnswer.objects.filter(assignment=assignment).count() == total
    # After the last image the worker is sent to their next unit (a new lease, another task).
    response = client.get(url)
    following = VerificationAssignment.objects.exclude(pk=assignment.pk).get()
    assert response["Location"] == reverse("crowd:verify", args=[following.pk])
    assert following.task_id != assignment.task_id


def test_a_worker_gets_each_unit_once_and_a_unit_no_more_than_it_wants(make_user, campaign):
    workers = [services.worker_for_user(user=make_user("annotator", f"v{i}")) for i in range(3)]
    task_ids = []
    for worker in workers:
        a = verification.verification_next(worker=worker, campaign=campaign)
        assert verification.verification_next(worker=worker, campaign=campaign) == a  # held
        task_ids.append(a.task_id)
    # Fewest answers first: three workers spread over the three units.
    assert len(set(task_ids)) == 3
    for i in range(3):  # redundancy 2: three more workers fill the second slots
        worker = services.worker_for_user(user=make_user("annotator", f"w{i}"))
        verification.verification_next(worker=worker, campaign=campaign)
    late = services.worker_for_user(user=make_user("annotator", "late"))
    with pytest.raises(services.NoTask, match="no verification tasks left"):
        verification.verification_next(worker=late, campaign=campaign)
    for task in campaign.verification_tasks.all():
        assert task.assignments.count() == 2


def _answer_all(assignment, worker, rule):
    for item in assignment.task.items.order_by("position"):
        token = verification.tile_token(task_id=item.task_id, position=item.position)
        verification.verification_answer(
            assignment=assignment, worker=worker, token=token, answer=rule(item)
        )


def test_disagreement_asks_for_more_workers_up_to_the_maximum(make_user, campaign):
    campaign.max_answers = 4
    campaign.target_confidence = 0.95
    campaign.save()
    truth = lambda item: "yes" if (item.coverage or 0) >= 0.05 else "no"  # noqa: E731
    flip = {"yes": "no", "no": "yes"}
    task = campaign.verification_tasks.order_by("unit__index").first()
    answers = [truth, lambda item: flip[truth(item)]]
    for i, rule in enumerate(answers):
        worker = services.worker_for_user(user=make_user("annotator", f"d{i}"))
        a = VerificationAssignment.objects.create(task=task, worker=worker)
        _answer_all(a, worker, rule)
    task.refresh_from_db()
    # Two workers contradict each other on every image: the unit wants a third.
    assert task.answers_wanted == 3 and task.confidence < 0.95


def test_the_admin_lists_verification_rows(client, make_user, campaign):
    client.force_login(make_user("admin"))
    for name in ("verificationtask", "verificationitem", "verificationassignment"):
        assert client.get(reverse(f"admin:crowd_{name}_changelist")).status_code == 200
    item = VerificationItem.objects.first()
    assert (
        client.get(reverse("admin:crowd_verificationitem_change", args=[item.pk])).status_code
        == 200
    )


def test_an_expired_lease_sends_the_worker_home_and_refuses_answers(client, annotator, campaign):
    from datetime import timedelta

    from django.utils import timezone

    assignment = _start(client, campaign)
    url = reverse("crowd:verify", args=[assignment.pk])
    token = _token(client.get(url).content.decode())
    VerificationAssignment.objects.filter(pk=assignment.pk).update(
        lease_expires_at=timezone.now() - timedelta(seconds=1)
    )
    response = client.get(url)
    assert response.status_code == 302 and response["Location"] == reverse("crowd:annotator-home")
    worker = services.worker_for_user(user=annotator)
    with pytest.raises(services.CrowdError, match="time for this task ran out"):
        verification.verification_answer(
            assignment=assignment, worker=worker, token=token, answer="yes"
        )
    assert not VerificationAnswer.objects.exists()
