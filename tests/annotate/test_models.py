"""Constraints of the crowd data model hold in the database."""

import pytest
from django.db import IntegrityError, transaction

from annotate.crowd.models import Answer
from tests.factories import AssignmentFactory, CampaignFactory, TaskFactory, WorkerFactory

pytestmark = pytest.mark.django_db


def test_a_worker_gets_a_task_once():
    assignment = AssignmentFactory()
    AssignmentFactory(task=assignment.task)  # another worker: fine
    with pytest.raises(IntegrityError), transaction.atomic():
        AssignmentFactory(task=assignment.task, worker=assignment.worker)


def test_one_task_per_unit_and_campaign():
    task = TaskFactory()
    TaskFactory(unit=task.unit)  # same unit in another campaign: fine
    with pytest.raises(IntegrityError), transaction.atomic():
        TaskFactory(campaign=task.campaign, unit=task.unit)


def test_precision_is_a_fraction():
    assignment = AssignmentFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        Answer.objects.create(
            assignment=assignment, concept_text="car", category="object", precision=1.2
        )


def test_campaign_gold_rate_and_redundancy_are_checked():
    with pytest.raises(IntegrityError), transaction.atomic():
        CampaignFactory(gold_rate=1.5)
    with pytest.raises(IntegrityError), transaction.atomic():
        CampaignFactory(redundancy=0)


def test_external_worker_ids_are_unique_per_source_but_local_ones_may_be_blank():
    WorkerFactory(source="mturk", external_id="A1B2")
    WorkerFactory(source="local", external_id="")
    WorkerFactory(source="local", external_id="")
    with pytest.raises(IntegrityError), transaction.atomic():
        WorkerFactory(source="mturk", external_id="A1B2")
