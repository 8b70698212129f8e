"""The verification sample is built off the web request (issue 16): the form and the API create
the campaign at once with its build pending and hand `annotate.crowd.tasks.build_verification`
(queue gpu) to Celery on commit; the task records progress, then ready or failed with the error;
a rerun is idempotent; verification leases are refused until the sample is ready."""

from unittest import mock

import pytest
from django.urls import reverse

from annotate.crowd import services, tasks, verification
from annotate.crowd.models import Campaign, VerificationTask
from config.celery import app
from dissect import models as dm
from dissect.services import networks
from tests.annotate.crowd.test_verification_doors import run  # noqa: F401  (the fixture)

pytestmark = pytest.mark.django_db
API = "/api/crowd/campaigns/"


@pytest.fixture
def queued(settings):
    """Celery with a broker (not eager): the enqueued build is captured, not run."""
    settings.CELERY_TASK_ALWAYS_EAGER = False
    with mock.patch.object(tasks.build_verification, "delay") as delay:
        yield delay


def _api_create(client, django_capture_on_commit_callbacks, run):  # noqa: F811
    body = {"run": run.pk, "layers": ["conv"], "tiles_per_task": 13, "verify_source": "auto",
            "verify_images": 5, "verify_checks": 0}  # fmt: skip
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = client.post(API, body, content_type="application/json")
    assert response.status_code == 201, response.content
    assert len(callbacks) == 1
    return response


def test_the_build_is_routed_to_the_gpu_queue():
    route = app.amqp.router.route({}, "annotate.crowd.tasks.build_verification")
    assert route["queue"].name == "gpu"


def test_the_api_returns_at_once_pending_then_the_task_builds_the_sample(
    run,  # noqa: F811
    client,
    make_user,
    queued,
    django_capture_on_commit_callbacks,
):
    researcher = make_user("researcher")
    client.force_login(researcher)
    response = _api_create(client, django_capture_on_commit_callbacks, run)
    body = response.json()
    assert body["verification"] == {"state": "pending", "done": 0, "total": 0, "error": "",
                                    "stale": False, "tasks": 0}  # fmt: skip
    campaign = Campaign.objects.get(pk=body["id"])
    assert campaign.tasks.count() == 4 and not campaign.verification_tasks.exists()
    assert campaign.verification_options == {
        "verify_source": "auto", "verify_images": 5, "verify_checks": 0
    }  # fmt: skip
    queued.assert_called_once_with(campaign.pk, actor_id=researcher.pk)

    # The campaign may go live; its verification leases wait for the sample.
    campaign = services.campaign_set_status(campaign=campaign, status="live", actor=None)
    worker = services.worker_for_user(user=make_user("annotator", "early"))
    with pytest.raises(services.NoTask, match="verification images are not ready yet"):
        verification.verification_next(worker=worker, campaign=campaign)

    # The gpu worker runs the task (its body, here).
    assert tasks.build_verification(campaign.pk, actor_id=researcher.pk) == "ready"
    campaign.refresh_from_db()
    assert campaign.verification_state == "ready" and campaign.verification_error == ""
    assert campaign.verification_done == campaign.verification_total > 0
    assert campaign.verification_tasks.count() == 3
    assert all(t.items.count() == 5 for t in campaign.verification_tasks.all())
    shown = client.get(f"{API}{campaign.pk}/").json()["verification"]
    assert shown["state"] == "ready" and shown["tasks"] == 3
    assert (
        verification.verification_next(worker=worker, campaign=campaign).task.campaign == campaign
    )

    # A rerun (a redelivered message) adds nothing.
    items = sorted(dm_ids(campaign))
    assert tasks.build_verification(campaign.pk) == "ready"
    assert VerificationTask.objects.filter(campaign=campaign).count() == 3
    assert sorted(dm_ids(campaign)) == items


def dm_ids(campaign):
    return VerificationTask.objects.filter(campaign=campaign).values_list(
        "pk", "items__image_id", "items__position"
    )


def test_a_failed_build_is_stored_shown_and_can_be_rebuilt(
    run,  # noqa: F811
    client,
    make_user,
    queued,
    django_capture_on_commit_callbacks,
    monkeypatch,
    settings,
):
    client.force_login(make_user("researcher"))
    campaign = Campaign.objects.get(
        pk=_api_create(client, django_capture_on_commit_callbacks, run).json()["id"]
    )

    def no_weights(network):
        raise FileNotFoundError(f"weights of {network.name} not found")

    good = networks.network_load  # the fixture's (the color network)
    monkeypatch.setattr("dissect.services.networks.network_load", no_weights)
    assert tasks.build_verification(campaign.pk) == "failed"
    campaign.refresh_from_db()
    assert campaign.verification_state == "failed"
    assert campaign.verification_error.startswith("FileNotFoundError: weights of")
    assert not campaign.verification_tasks.exists()

    page = client.get(reverse("crowd:campaign-detail", args=[campaign.pk])).content.decode()
    assert "The verification sample could not be built" in page
    assert "FileNotFoundError: weights of" in page
    assert "Build the verification sample again" in page
    assert client.get(f"{API}{campaign.pk}/").json()["verification"]["state"] == "failed"
    campaign = services.campaign_set_status(campaign=campaign, status="live", actor=None)
    worker = services.worker_for_user(user=make_user("annotator", "w"))
    with pytest.raises(services.NoTask, match="not ready yet"):
        verification.verification_next(worker=worker, campaign=campaign)

    # Fixed; the button builds it again (eager here: inline), with the same options.
    monkeypatch.setattr("dissect.services.networks.network_load", good)
    settings.CELERY_TASK_ALWAYS_EAGER = True
    rebuilt = client.post(
        reverse("crowd:campaign-verification-rebuild", args=[campaign.pk]), follow=True
    )
    page = rebuilt.content.decode()
    assert "3 verification tasks" in page and "could not be built" not in page
    campaign.refresh_from_db()
    assert campaign.verification_state == "ready" and campaign.verification_error == ""
    assert verification.verification_next(worker=worker, campaign=campaign)


def test_a_crowd_error_in_the_task_is_stored_with_what_to_do(
    run,  # noqa: F811
    client,
    make_user,
    queued,
    django_capture_on_commit_callbacks,
):
    client.force_login(make_user("researcher"))
    campaign = Campaign.objects.get(
        pk=_api_create(client, django_capture_on_commit_callbacks, run).json()["id"]
    )
    dm.AutoLabel.objects.filter(unit__layer__run=run).delete()  # gone before the worker ran
    assert tasks.build_verification(campaign.pk) == "failed"
    campaign.refresh_from_db()
    assert "no unit of conv has a auto label" in campaign.verification_error
    assert "compute automatic labels first" in campaign.verification_error


def test_the_form_returns_at_once_and_the_page_shows_the_build(
    run,  # noqa: F811
    client,
    make_user,
    queued,
    django_capture_on_commit_callbacks,
):
    client.force_login(make_user("researcher"))
    form = {
        "run": run.pk, "layers": "conv", "tiles_per_task": 13, "controls_per_task": 3,
        "redundancy": 2, "lease_minutes": 20, "reward_cents": 0, "gold_rate": 0,
        "min_gold_accuracy": 0.5, "auto_approve_hours": 72, "seed": 1,
        "verify_source": "auto", "verify_images": 5, "verify_checks": 0,
    }  # fmt: skip
    with django_capture_on_commit_callbacks(execute=True):
        created = client.post(reverse("crowd:campaign-new"), form, follow=True)
    page = created.content.decode()
    campaign = Campaign.objects.get()
    queued.assert_called_once()
    assert queued.call_args.args == (campaign.pk,)
    assert "verification sample is being built on a gpu worker" in page
    assert "Waiting for a gpu worker to build the verification sample" in page

    # While the task runs, its progress is on the page.
    Campaign.objects.filter(pk=campaign.pk).update(
        verification_state="building", verification_done=7, verification_total=30
    )
    page = client.get(reverse("crowd:campaign-detail", args=[campaign.pk])).content.decode()
    assert "Building the verification sample (step 7 of 30" in page


def test_an_unreachable_broker_fails_the_build_instead_of_leaving_it_pending(
    run,  # noqa: F811
    client,
    make_user,
    queued,
    django_capture_on_commit_callbacks,
):
    client.force_login(make_user("researcher"))
    queued.side_effect = ConnectionError("broker down")
    campaign = Campaign.objects.get(
        pk=_api_create(client, django_capture_on_commit_callbacks, run).json()["id"]
    )
    campaign.refresh_from_db()
    assert campaign.verification_state == "failed"
    assert "task queue could not be reached (ConnectionError: broker down)" in (
        campaign.verification_error
    )
    # A second press while a build is pending does not enqueue it twice.
    queued.side_effect = None
    queued.reset_mock()
    url = reverse("crowd:campaign-verification-rebuild", args=[campaign.pk])
    with django_capture_on_commit_callbacks(execute=True):
        client.post(url)
    with django_capture_on_commit_callbacks(execute=True):
        again = client.post(url, follow=True)
    assert "already being built" in again.content.decode()
    queued.assert_called_once_with(campaign.pk, actor_id=mock.ANY)


def test_a_transient_error_is_retried_and_the_last_try_is_stored(
    run,  # noqa: F811
    client,
    make_user,
    queued,
    django_capture_on_commit_callbacks,
    monkeypatch,
):
    from django.db import OperationalError

    client.force_login(make_user("researcher"))
    campaign = Campaign.objects.get(
        pk=_api_create(client, django_capture_on_commit_callbacks, run).json()["id"]
    )

    def flaky(**_kwargs):
        raise OperationalError("server closed the connection")

    monkeypatch.setattr(verification, "verification_tasks_create", flaky)
    # Not the last try: re-raised for Celery's autoretry, the campaign still building.
    with pytest.raises(OperationalError):
        tasks.build_verification.run(campaign.pk)
    campaign.refresh_from_db()
    assert campaign.verification_state == "building"
    # The last try: stored on the campaign.
    tasks.build_verification.push_request(retries=tasks.build_verification.max_retries)
    try:
        with pytest.raises(OperationalError):
            tasks.build_verification.run(campaign.pk)
    finally:
        tasks.build_verification.pop_request()
    campaign.refresh_from_db()
    assert campaign.verification_state == "failed"
    assert "server closed the connection (after 5 retries)" in campaign.verification_error


def test_a_build_whose_worker_died_is_stale_after_the_time_limit_and_can_be_rebuilt(
    run,  # noqa: F811
    client,
    make_user,
    queued,
    django_capture_on_commit_callbacks,
    settings,
):
    """The worker died mid-build (state left building): within the task's hard time limit the
    build counts as running (a rebuild is refused); past it the page says it stalled, and the
    button builds it again."""
    from datetime import timedelta

    from django.utils import timezone

    client.force_login(make_user("researcher"))
    campaign = Campaign.objects.get(
        pk=_api_create(client, django_capture_on_commit_callbacks, run).json()["id"]
    )
    limit = verification.verification_build_time_limit()
    assert limit == app.conf.task_time_limit == settings.CELERY_TASK_TIME_LIMIT
    started = timezone.now() - timedelta(seconds=limit - 60)  # a minute inside the limit
    Campaign.objects.filter(pk=campaign.pk).update(
        verification_state="building", verification_done=7, verification_total=30,
        verification_started_at=started,
    )  # fmt: skip
    detail = reverse("crowd:campaign-detail", args=[campaign.pk])
    rebuild = reverse("crowd:campaign-verification-rebuild", args=[campaign.pk])
    queued.reset_mock()
    refused = client.post(rebuild, follow=True).content.decode()
    assert "already being built" in refused and "Building the verification sample" in refused
    queued.assert_not_called()
    assert client.get(f"{API}{campaign.pk}/").json()["verification"]["stale"] is False

    # Two minutes later the limit has passed: the worker cannot be running it any more.
    Campaign.objects.filter(pk=campaign.pk).update(
        verification_started_at=started - timedelta(seconds=120)
    )
    page = client.get(detail).content.decode()
    assert "The verification build stalled" in page
    assert "did not finish within the task&#x27;s time limit (1 h 5 min)" in page
    assert "Build the verification sample again" in page
    shown = client.get(f"{API}{campaign.pk}/").json()["verification"]
    assert shown["state"] == "building" and shown["stale"] is True
    assert "time limit" in shown["error"]
    listing = client.get(reverse("crowd:campaign-list")).content.decode()
    assert "stalled" in listing and "build again" in listing
    campaign = services.campaign_set_status(campaign=campaign, status="live", actor=None)
    worker = services.worker_for_user(user=make_user("annotator", "w"))
    with pytest.raises(services.NoTask, match="not ready yet"):  # still no partial sample
        verification.verification_next(worker=worker, campaign=campaign)

    with django_capture_on_commit_callbacks(execute=True):
        again = client.post(rebuild, follow=True).content.decode()
    assert "being built again" in again and "Waiting for a gpu worker" in again
    queued.assert_called_once_with(campaign.pk, actor_id=mock.ANY)
    campaign.refresh_from_db()
    assert campaign.verification_state == "pending" and campaign.verification_started_at is None
    # The new worker runs it: started now, then ready.
    assert tasks.build_verification(campaign.pk) == "ready"
    campaign.refresh_from_db()
    assert campaign.verification_state == "ready"
    assert timezone.now() - campaign.verification_started_at < timedelta(minutes=5)
    assert verification.verification_next(worker=worker, campaign=campaign)


def test_the_time_limit_follows_the_celery_setting(monkeypatch):
    from django.utils import timezone

    assert tasks.build_verification.time_limit == app.conf.task_time_limit  # the task's own
    monkeypatch.setattr(tasks.build_verification, "time_limit", 600)
    assert verification.verification_build_time_limit() == 600
    now = timezone.now()
    campaign = Campaign(verification_state="building", verification_started_at=now)
    assert verification.verification_build_status(campaign=campaign, now=now).busy
    late = now + timezone.timedelta(seconds=601)
    status = verification.verification_build_status(campaign=campaign, now=late)
    assert status.state == "stale" and not status.busy and status.can_rebuild
    assert "(10 min)" in status.error
    monkeypatch.setattr(tasks.build_verification, "time_limit", None)  # no limit: never stale
    monkeypatch.setitem(app.conf, "task_time_limit", None)
    assert verification.verification_build_status(campaign=campaign, now=late).state == "building"


def test_the_campaign_list_shows_each_verification_build(run, client, make_user):  # noqa: F811
    client.force_login(make_user("researcher"))
    states = {
        "plain": {},
        "waiting": {"verification_state": "pending"},
        "running": {"verification_state": "building", "verification_done": 12,
                    "verification_total": 48},
        "done": {"verification_state": "ready"},
        "broken": {"verification_state": "failed",
                   "verification_error": "FileNotFoundError: weights of colors not found"},
    }  # fmt: skip
    for name, fields in states.items():
        Campaign.objects.create(name=name, run=run, layers=["conv"], **fields)
    page = client.get(reverse("crowd:campaign-list")).content.decode()
    rows = {name: page[page.index(f">{name}</a>") :].split("</tr>", 1)[0] for name in states}
    assert 'class="muted">none<' in rows["plain"]
    assert "waiting" in rows["waiting"] and "gpu worker" in rows["waiting"]
    assert "building" in rows["running"] and "step 12 of 48" in rows["running"]
    assert 'aria-valuenow="12"' in rows["running"] and "width: 25%" in rows["running"]
    assert "ready" in rows["done"] and "failed" not in rows["done"]
    assert "failed" in rows["broken"]
    assert "FileNotFoundError: weights of colors not found" in rows["broken"]
