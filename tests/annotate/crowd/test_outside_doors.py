"""Issue 12, point 3: the outside-crowd doors (/mturk/campaigns/ID/, /tasks/link/ID/) create a
worker and a lease for any worker id without a login. They are rate-limited per client IP, their
leases are capped per campaign (a share of the open slots) and per worker id, so anonymous ids
cannot exhaust a campaign: the issue's scenario (520 requests leased 511 of 512 tasks) scaled
down to 48 anonymous ids against 16 tasks."""

import pytest
from django.urls import reverse

from annotate.crowd import selectors, services
from annotate.crowd.models import Assignment, Worker
from tests.annotate.crowd.conftest import build_run

A = Assignment.Status
pytestmark = pytest.mark.django_db


@pytest.fixture
def campaign(db):
    run = build_run(units=16, tops=10, controls=1)
    c = services.campaign_create(run=run, layers=["conv5"], redundancy=1, controls_per_task=1)
    return services.campaign_set_status(campaign=c, status="live", actor=None)


def _mturk(client, campaign, worker_id, *, ip="198.51.100.7", assignment=None):
    query = f"?workerId={worker_id}&assignmentId={assignment or 'A-' + worker_id}&hitId=H1"
    return client.get(reverse("crowd:mturk-entry", args=[campaign.pk]) + query, REMOTE_ADDR=ip)


def _external_leases(campaign) -> int:
    return Assignment.objects.filter(
        task__campaign=campaign, status=A.LEASED, worker__source=Worker.Source.MTURK
    ).count()


def test_anonymous_worker_ids_cannot_exhaust_a_campaign(client, campaign, make_user):
    # Every request from its own address (a botnet; the per-IP limit does not help here).
    codes = [
        _mturk(client, campaign, f"bot{i}", ip=f"203.0.113.{i}").status_code for i in range(48)
    ]
    cap = services.external_lease_cap(campaign=campaign)
    assert cap == 8  # half of 16 open slots
    assert codes.count(302) == cap
    assert _external_leases(campaign) == cap
    refused = _mturk(client, campaign, "bot-late", ip="203.0.113.200")
    assert refused.status_code == 409
    assert "outside panels are taken" in refused.content.decode()
    # Refused ids leave no Worker rows behind: only the ids that got a lease exist.
    assert not Worker.objects.filter(external_id="bot-late").exists()
    assert Worker.objects.filter(source=Worker.Source.MTURK).count() == cap
    # A real annotator still gets a task.
    client.force_login(make_user("annotator"))
    started = client.post(reverse("crowd:task-start", args=[campaign.pk]))
    assert started.status_code == 302
    assert "/tasks/assignments/" in started["Location"]


def test_a_worker_with_a_lease_gets_it_back_when_the_cap_is_reached(client, campaign):
    first = _mturk(client, campaign, "w0", ip="203.0.113.1")
    for i in range(1, 8):
        _mturk(client, campaign, f"w{i}", ip=f"203.0.113.{i + 1}")
    assert _external_leases(campaign) == 8
    again = _mturk(client, campaign, "w0", ip="203.0.113.1")
    assert again.status_code == 302

    def held(response):
        return selectors.assignment_from_token(token=response["Location"].split("/")[-2]).pk

    assert held(again) == held(first)


def test_the_cap_follows_the_open_slots(campaign, settings):
    settings.CROWDDISSECT = {**settings.CROWDDISSECT, "EXTERNAL_LEASE_SHARE": 0.25}
    assert services.external_lease_cap(campaign=campaign) == 4
    settings.CROWDDISSECT = {**settings.CROWDDISSECT, "EXTERNAL_LEASES_MAX": 2}
    assert services.external_lease_cap(campaign=campaign) == 2


def test_one_client_is_rate_limited(client, campaign, settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"external_entry": "5/min"},
    }
    codes = [_mturk(client, campaign, f"same-ip-{i}").status_code for i in range(7)]
    assert codes[:5] == [302] * 5
    assert codes[5:] == [429, 429]
    refused = _mturk(client, campaign, "one-more")
    assert int(refused["Retry-After"]) >= 1
    assert "Too many requests from your network" in refused.content.decode()
    # Another address is not affected, and the link-out door shares the limit per address.
    assert _mturk(client, campaign, "elsewhere", ip="192.0.2.9").status_code == 302
    link = reverse("crowd:link-entry", args=[campaign.pk]) + "?PROLIFIC_PID=p1"
    assert client.get(link, REMOTE_ADDR="198.51.100.7").status_code == 429
    # MTurk previews create nothing and are never limited.
    preview = client.get(
        reverse("crowd:mturk-entry", args=[campaign.pk])
        + "?assignmentId=ASSIGNMENT_ID_NOT_AVAILABLE&hitId=H1",
        REMOTE_ADDR="198.51.100.7",
    )
    assert preview.status_code == 200


def test_one_worker_id_is_limited_in_new_leases(campaign, settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"external_lease": "2/hour"},
    }
    worker = services.worker_for_external(source=Worker.Source.MTURK, external_id="churner")
    for _ in range(2):
        a = services.assignment_for_external(worker=worker, campaign=campaign)
        services.assignment_return(assignment=a, worker=worker)
    with pytest.raises(services.TooManyRequests) as refused:
        services.assignment_for_external(worker=worker, campaign=campaign)
    assert refused.value.status == 429 and refused.value.field == "workerId"
    assert refused.value.retry_after >= 1


def test_local_annotators_are_not_capped(campaign, make_user):
    from annotate.crowd.services import worker_for_user

    for i in range(12):
        worker = worker_for_user(user=make_user("annotator", f"local{i}"))
        services.assignment_next(worker=worker, campaign=campaign)
    assert Assignment.objects.filter(task__campaign=campaign, status=A.LEASED).count() == 12
