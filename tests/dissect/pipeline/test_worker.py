"""A run on a real Celery worker (queues gpu and cpu) against PostgreSQL and the broker.

Skipped unless CELERY_BROKER_URL is set (the embedded default runs tasks eagerly instead).
"""

import os
import time

import pytest
from django.core.files.storage import default_storage

from dissect.models import DissectionRun, Shard, UnitImage
from dissect.services import run_cancel, run_create, run_resume, run_start

from .conftest import SMALL

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not os.environ.get("CELERY_BROKER_URL"), reason="needs CELERY_BROKER_URL and a worker"
    ),
]


def _wait(run, statuses, timeout_s=180):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        run.refresh_from_db()
        if run.status in statuses:
            return run
        time.sleep(0.5)
    raise AssertionError(f"run {run.pk} still {run.status} ({run.progress}) after {timeout_s}s")


def test_worker_runs_the_chord_and_resumes_from_stored_shards(
    celery_worker_process, tiny_network, image_set
):
    # Receptive field on: the canvas is chord(shards -> merge) -> chord(rf per layer -> render).
    run = run_create(network=tiny_network, image_set=image_set, layers=[SMALL], top_k=3,
                     controls=1, shard_size=4, tile_px=20, receptive_field=True,
                     options={"rf_images": 1, "rf_stride_px": 16})  # fmt: skip
    run_start(run=run)  # no transaction open: enqueued right away
    _wait(run, {DissectionRun.Status.DONE, DissectionRun.Status.FAILED})
    assert run.status == DissectionRun.Status.DONE, run.error
    assert run.device == "cpu" and run.progress["render"]["done"] > 0
    assert run.layer_set.get().empirical_rf_mean_px is not None
    shards = list(run.shards.all())
    assert len(shards) == 3 and all(s.status == Shard.Status.DONE and s.worker for s in shards)
    tiles = UnitImage.objects.filter(unit__layer__run=run)
    assert tiles.count() >= 16 * 3 and all(default_storage.exists(t.tile_path) for t in tiles)

    # Cancel a second run before any worker picks it, then resume: it finishes.
    second = run_create(network=tiny_network, image_set=image_set, layers=[SMALL],
                        top_k=3, controls=1, shard_size=6, tile_px=20)  # fmt: skip
    run_cancel(run=second)
    run_resume(run=second)
    _wait(second, {DissectionRun.Status.DONE, DissectionRun.Status.FAILED})
    assert second.status == DissectionRun.Status.DONE, second.error
