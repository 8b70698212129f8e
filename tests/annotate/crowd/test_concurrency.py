"""The assignment engine under real concurrency on PostgreSQL (row locks, SKIP LOCKED).

Run with DATABASE_URL=postgres://postgres@127.0.0.1:5432/crowddissect; skipped on SQLite.
"""

import threading
from collections import Counter

import pytest
from django.db import connection, connections

from annotate.crowd import services
from annotate.crowd.models import Answer, Assignment, Worker
from annotate.crowd.services import NoTask
from dissect.models import UnitImage
from tests.annotate.crowd.conftest import build_run

A = Assignment.Status
pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def _postgres_only():
    if connection.vendor != "postgresql":
        pytest.skip("concurrency tests need DATABASE_URL to point at PostgreSQL")


def _run_threads(count: int, target) -> list[BaseException]:
    barrier, errors = threading.Barrier(count), []

    def body(i: int):
        try:
            barrier.wait()
            target(i)
        except BaseException as error:  # noqa: BLE001 - reported by the test
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=body, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return errors


def test_concurrent_workers_fill_every_slot_exactly_once():
    run = build_run(units=6, tops=10, controls=1)
    campaign = services.campaign_create(
        run=run, layers=["conv5"], redundancy=3, controls_per_task=1
    )
    campaign = services.campaign_set_status(campaign=campaign, status="live", actor=None)
    controls = {
        h.pk: [
            p
            for p, pk in enumerate(h.tile_order)
            if UnitImage.objects.filter(pk=pk, kind="control").exists()
        ]
        for h in campaign.tasks.all()
    }
    workers = [Worker.objects.create(pseudonym=f"cw{i}") for i in range(10)]
    per_worker = Counter()

    def work(i: int):
        while True:
            try:
                a = services.assignment_next(worker=workers[i], campaign=campaign)
            except NoTask:
                return
            services.assignment_submit(
                assignment=a,
                worker=workers[i],
                concept="tree",
                category="object",
                flagged_positions=controls[a.task_id],
            )
            per_worker[i] += 1

    assert _run_threads(len(workers), work) == []
    answers = Counter(
        Assignment.objects.filter(status=A.SUBMITTED).values_list("task_id", flat=True)
    )
    assert answers == {task_id: 3 for task_id in controls}  # every slot filled, none over-filled
    pairs = Assignment.objects.values_list("task_id", "worker_id")
    assert len(set(pairs)) == len(pairs)
    assert Answer.objects.count() == sum(per_worker.values()) == 18  # nothing lost


def test_one_worker_racing_itself_holds_one_lease():
    run = build_run(units=4, tops=10, controls=1)
    campaign = services.campaign_create(run=run, layers=["conv5"], controls_per_task=1)
    campaign = services.campaign_set_status(campaign=campaign, status="live", actor=None)
    worker = Worker.objects.create(pseudonym="twin")
    leased = []
    errors = _run_threads(
        6, lambda i: leased.append(services.assignment_next(worker=worker, campaign=campaign).pk)
    )
    assert errors == []
    assert len(set(leased)) == 1
    assert Assignment.objects.filter(worker=worker).count() == 1
