"""Verification leases under real concurrency on PostgreSQL (issue 16): many workers at once never
push a unit past its answers_wanted, and a double-clicked answer is stored once.

Run with DATABASE_URL=postgres://...; skipped on SQLite (which serializes writes anyway)."""

from collections import Counter

import pytest
from django.db import connection

from annotate.crowd import services, verification
from annotate.crowd.models import VerificationAnswer, VerificationAssignment
from tests.annotate.crowd.test_concurrency import _run_threads
from tests.annotate.crowd.test_verification import build_verification_campaign

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def _postgres_only():
    if connection.vendor != "postgresql":
        pytest.skip("concurrency tests need DATABASE_URL to point at PostgreSQL")


def test_concurrent_workers_never_overfill_a_unit(tmp_path, make_user):
    campaign = build_verification_campaign(tmp_path, images=5, checks=0, redundancy=2)
    workers = [services.worker_for_user(user=make_user("annotator", f"r{i}")) for i in range(10)]
    got, refused = [], []

    def lease(i: int) -> None:
        try:
            got.append(verification.verification_next(worker=workers[i], campaign=campaign).pk)
        except services.NoTask:
            refused.append(i)

    assert _run_threads(10, lease) == []
    per_task = Counter(
        VerificationAssignment.objects.filter(pk__in=got).values_list("task_id", flat=True)
    )
    # Three units x two slots: six leases, every unit at its cap, the other four refused.
    assert sorted(per_task.values()) == [2, 2, 2] and len(refused) == 4


def test_a_double_submitted_answer_is_stored_once(tmp_path, make_user):
    campaign = build_verification_campaign(tmp_path, images=5, checks=0, redundancy=1)
    worker = services.worker_for_user(user=make_user("annotator", "double"))
    assignment = verification.verification_next(worker=worker, campaign=campaign)
    token = verification.tile_token(task_id=assignment.task_id, position=0)
    outcomes = []

    def answer(i: int) -> None:
        try:
            verification.verification_answer(
                assignment=assignment, worker=worker, token=token, answer="yes"
            )
            outcomes.append("stored")
        except verification.AlreadyAnswered:
            outcomes.append("refused")

    assert _run_threads(6, answer) == []
    assert sorted(outcomes) == ["refused"] * 5 + ["stored"]
    assert VerificationAnswer.objects.filter(assignment=assignment).count() == 1
