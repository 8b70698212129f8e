"""Issue 12, point 2: a run whose worker died does not stall silently. The watchdog (beat) sees
that its progress stopped, records it on the run, resumes it (shards already stored are kept),
shows it on the run page, the status JSON and /healthz, gives up after a few recoveries with a
message; a manual resume of a run still in flight is refused, so no shard runs twice. The visibility
timeout is derived from the task time limit."""

from datetime import timedelta

import pytest
from django.utils import timezone

from dissect import watchdog
from dissect.models import DissectionRun, ImageSet, Network, Shard
from dissect.services import PipelineConflict, run_resume

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def enqueued(monkeypatch):
    calls = []
    monkeypatch.setattr(
        "dissect.services.runs._enqueue", lambda run_id, pending: calls.append((run_id, pending))
    )
    return calls


@pytest.fixture
def running(tmp_path):
    network = Network.objects.create(name="wd-net", arch="alexnet")
    image_set = ImageSet.objects.create(name="wd-imgs", root=str(tmp_path))
    run = DissectionRun.objects.create(
        network=network, image_set=image_set, layers=["conv5"], status="running",
        stage="extract", parameters={"attempt": 1, "n_images": 40},
        progress={"extract": {"done": 30, "total": 40}},
    )  # fmt: skip
    from dissect.artifacts import artifact_save, shard_state_name

    state = artifact_save(shard_state_name(run.pk, 0), b"x")
    for index in range(4):
        done = index < 3
        Shard.objects.create(
            run=run, index=index, image_count=10, status="done" if done else "pending",
            state_path=state if done else "",
        )  # fmt: skip
    return run


def _sweep(at):
    return watchdog.watchdog_sweep(now=at)


def test_a_dead_worker_is_found_recorded_and_resumed(running, enqueued, client, make_user):
    t0 = timezone.now()
    assert _sweep(t0) == {running.pk: "moving"}
    assert _sweep(t0 + timedelta(seconds=60)) == {running.pk: "waiting"}
    running.refresh_from_db()
    # A worker may still be on it: a manual resume is refused, nothing is enqueued twice.
    assert watchdog.run_in_flight(running, now=t0 + timedelta(seconds=60))
    with pytest.raises(PipelineConflict, match="a worker is on it"):
        run_resume(run=running)
    assert enqueued == []

    stalled_at = t0 + timedelta(seconds=watchdog.stall_seconds() + 1)
    assert _sweep(stalled_at) == {running.pk: "resumed"}
    running.refresh_from_db()
    assert running.parameters["attempt"] == 2  # the dead worker's redelivered task is ignored
    assert running.parameters["stalled"]["stage"] == "extract"
    assert running.parameters["stalled"]["recoveries"] == 1
    assert enqueued == [(running.pk, [3])]  # only the shard without a stored state

    from core.models import AuditEvent

    event = AuditEvent.objects.filter(action="run.resume").latest("id")
    assert event.data["by"] == "watchdog"

    # Shown everywhere: /healthz (503, naming the run), the status JSON, the run page.
    health = client.get("/healthz")
    assert health.status_code == 503 and "runs" in health.json()["down"]
    assert health.json()["checks"]["runs"]["stalled"][0]["run"] == running.pk
    client.force_login(make_user("researcher"))
    status = client.get(f"/runs/{running.pk}/status.json").json()
    assert status["stalled"]["recoveries"] == 1
    assert "Stalled in stage extract" in client.get(f"/runs/{running.pk}/").content.decode()

    # The resumed attempt gets a whole bound before it counts as stalled again.
    assert _sweep(stalled_at + timedelta(seconds=60)) == {running.pk: "waiting"}
    # It moves again: the stall is over.
    DissectionRun.objects.filter(pk=running.pk).update(
        progress={"extract": {"done": 35, "total": 40}}
    )
    assert _sweep(stalled_at + timedelta(seconds=120)) == {running.pk: "moving"}
    running.refresh_from_db()
    assert "stalled" not in running.parameters
    assert client.get("/healthz").status_code == 200


def test_a_run_that_keeps_stalling_fails_with_a_message(running, enqueued, settings):
    settings.CROWDDISSECT = {**settings.CROWDDISSECT, "RUN_STALL_SECONDS": 10,
                             "RUN_STALL_RECOVERIES": 2}  # fmt: skip
    at = timezone.now()
    _sweep(at)
    outcomes = [_sweep(at + timedelta(seconds=11 * k))[running.pk] for k in range(1, 4)]
    assert outcomes == ["resumed", "resumed", "failed"]
    running.refresh_from_db()
    assert running.status == "failed"
    assert (
        "after 2 automatic resumes" in running.error and f"--resume {running.pk}" in running.error
    )


def test_without_a_watchdog_a_running_run_can_be_resumed(running, enqueued):
    # The embedded default has no beat: a run left running by a dead process resumes at once.
    assert not watchdog.run_in_flight(running)
    run_resume(run=running)
    assert enqueued == [(running.pk, [3])]


def test_finished_runs_are_left_alone(running, enqueued):
    DissectionRun.objects.filter(pk=running.pk).update(status="done")
    assert _sweep(timezone.now()) == {}


def test_the_visibility_timeout_follows_the_task_time_limit():
    from config.celery import app

    timeout = app.conf.broker_transport_options["visibility_timeout"]
    assert timeout > app.conf.task_time_limit  # a live task is never handed out twice
    assert timeout <= app.conf.task_time_limit + 600


def test_the_watchdog_runs_on_the_cpu_queue_every_minute():
    from config.celery import app

    entry = next(e for e in app.conf.beat_schedule.values() if "watchdog" in e["task"])
    assert entry["schedule"] <= 60
    assert app.amqp.router.route({}, entry["task"])["queue"].name == "cpu"
