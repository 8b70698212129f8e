"""/healthz: up on the embedded default, 503 naming what is down, real workers per queue in CI."""

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from celery.result import allow_join_result

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.django_db
def test_healthz_up_on_the_embedded_default(client, settings):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["ok"] is True and body["down"] == []
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["workers"]["devices"]["in-process"] in {"cpu", "cuda"}


def healthz_in_fresh_process(tmp_path, **env_vars) -> tuple[int, dict]:
    """GET /healthz in a new process configured only by environment variables."""
    code = (
        "import django, json; django.setup(); from django.test import Client; r = Client().get('/healthz'); "
        "print(r.status_code); print(r.content.decode())"
    )
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "CELERY_BROKER_URL"}}
    env.update(
        {
            "CROWDDISSECT_DATA_DIR": str(tmp_path),
            "DJANGO_SETTINGS_MODULE": "config.settings",
            **env_vars,
        }
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=60
    )
    status, body = result.stdout.split("\n", 1)
    return int(status), json.loads(body)


def test_healthz_names_an_unreachable_broker(tmp_path):
    status, body = healthz_in_fresh_process(tmp_path, CELERY_BROKER_URL="redis://127.0.0.1:1/0")
    assert status == 503
    assert body["down"] == ["broker", "workers"]
    assert body["checks"]["broker"]["error"].startswith(
        "CELERY_BROKER_URL: cannot reach the broker"
    )


def test_health_report_names_a_database_that_is_down(tmp_path):
    code = "import django, json; django.setup(); from config.health import check_database; print(json.dumps(check_database()))"
    env = {
        **os.environ,
        "DATABASE_URL": "postgres://postgres@127.0.0.1:1/nothing",
        "CROWDDISSECT_DATA_DIR": str(tmp_path),
    }
    env.pop("CELERY_BROKER_URL", None)
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=60
    )
    report = json.loads(result.stdout)
    assert report["ok"] is False and report["error"].startswith("DATABASE_URL:")


@pytest.mark.integration
def test_real_worker_round_trip_and_health(celery_worker_process, client, settings):
    """Enqueue through the real broker; a separate worker process writes to PostgreSQL; we see the row."""
    from config.tasks import roundtrip_write
    from core.models import AuditEvent

    token = uuid.uuid4().hex
    # This test is a client, not a task. Celery's "no join inside a task" flag is process-global
    # and can be left set by eager tasks that other tests ran from several threads at once.
    with allow_join_result():
        pk = roundtrip_write.delay(token).get(timeout=60)
    event = AuditEvent.objects.get(pk=int(pk))
    assert event.target_id == token and event.data == {"via": "celery"}

    settings.CELERY_TASK_ALWAYS_EAGER = False
    body = client.get("/healthz").json()
    assert body["checks"]["broker"]["ok"] is True
    served = body["checks"]["workers"]["queues"]
    assert served["gpu"] and served["cpu"], body
    assert set(body["checks"]["workers"]["devices"].values()) <= {"cpu", "cuda"}
