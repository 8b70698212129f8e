"""The verification sample built by a real Celery worker (queue gpu) against PostgreSQL and the
broker: the web side only records the build as pending; the worker process loads the network
from its registered checkpoint, samples each labeled unit's whole activation range and stores
the tasks, and the campaign reads ready.

Skipped unless CELERY_BROKER_URL is set (the embedded default runs the build eagerly)."""

import os

import pytest

from annotate.crowd.models import Campaign
from annotate.crowd.verification import campaign_create_with_verification
from dissect.models import AutoLabel, DissectionRun, Unit
from dissect.services import run_create, run_start
from tests.annotate.labels.test_labels_worker import wait_for
from tests.dissect.pipeline.conftest import (  # noqa: F401  (the fixtures)
    SMALL,
    image_folder,
    image_set,
    tiny_checkpoint,
    tiny_network,
)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not os.environ.get("CELERY_BROKER_URL"), reason="needs CELERY_BROKER_URL and a worker"
    ),
]


def test_a_gpu_worker_builds_the_verification_sample(
    celery_worker_process,
    tiny_network,  # noqa: F811
    image_set,  # noqa: F811
):
    run = run_create(network=tiny_network, image_set=image_set, layers=[SMALL], top_k=10,
                     controls=2, shard_size=6, tile_px=20)  # fmt: skip
    run_start(run=run)
    wait_for(lambda: DissectionRun.objects.get(pk=run.pk).status in ("done", "failed"), 240)
    run.refresh_from_db()
    assert run.status == DissectionRun.Status.DONE, run.error
    units = list(Unit.objects.filter(layer__run=run).order_by("index")[:3])
    for unit in units:  # no label maps in this image set: best automatic labels by hand
        AutoLabel.objects.create(unit=unit, category="", label=f"thing {unit.index}", iou=0.3)

    campaign = campaign_create_with_verification(
        run=run, layers=[SMALL], tiles_per_task=12, controls_per_task=2,
        verify_source="auto", verify_images=5, verify_checks=0,
    )  # fmt: skip
    assert campaign.verification_state == Campaign.VerificationState.PENDING  # not built here

    def built():
        row = Campaign.objects.get(pk=campaign.pk)
        return row if row.verification_state in ("ready", "failed") else None

    row = wait_for(built, 240)
    assert row.verification_state == Campaign.VerificationState.READY, row.verification_error
    tasks = list(row.verification_tasks.order_by("unit__index"))
    assert [t.unit_id for t in tasks] == [u.pk for u in units]
    for task in tasks:
        items = list(task.items.all())
        assert len(items) == 5 and len({i.image_id for i in items}) == 5
        assert all(i.tile_path for i in items)  # each image rendered with the unit's region
