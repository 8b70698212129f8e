"""Label recompute and exports on a real Celery worker (queue cpu) against PostgreSQL and the broker.

Skipped unless CELERY_BROKER_URL is set (the embedded default runs tasks eagerly instead).
"""

import hashlib
import os
import time
from pathlib import Path

import pytest
from django.core.files.storage import default_storage

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not os.environ.get("CELERY_BROKER_URL"), reason="needs CELERY_BROKER_URL and a worker"
    ),
]


def wait_for(check, timeout_s=90):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"not done after {timeout_s}s")


def test_worker_recomputes_labels_and_writes_exports(celery_worker_process, crowd_world):
    from annotate.labels.exports import export_create
    from annotate.labels.models import Export, UnitLabel
    from annotate.labels.tasks import recompute_unit_label

    world = crowd_world(
        [
            (0, "a", "Trees", "object", 0.9, [], "approved"),
            (0, "b", "tree", "object", 0.8, [], "submitted"),
        ]
    )
    unit = world["units"][0]
    recompute_unit_label.delay(unit.pk)
    label = wait_for(lambda: UnitLabel.objects.filter(unit=unit).first())
    assert label.concept_text == "tree" and label.is_detector

    export = export_create(kind="jsonl", parameters={"network": "tiny-net"}, actor=None)
    done = wait_for(
        lambda: Export.objects.filter(pk=export.pk, status__in=["done", "failed"]).first()
    )
    assert done.status == "done", done.error
    path = Path(default_storage.path(done.file_path))
    assert hashlib.sha256(path.read_bytes()).hexdigest() == done.sha256
    assert path.read_text().count("\n") == 1
