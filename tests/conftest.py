"""Shared fixtures: isolated media/run folders, users with roles, and a real Celery worker process."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _isolated_storage(settings, tmp_path):
    """Every test writes media and run artifacts under its own tmp folder (local storage; the
    object-store tests switch STORAGES to SeaweedFS themselves, tests/storage/conftest.py)."""
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.CROWDDISSECT = {**settings.CROWDDISSECT, "RUNS_DIR": tmp_path / "runs"}
    settings.SCRATCH_DIR = tmp_path / "scratch"
    if settings.STORAGE_KIND == "local":
        settings.STORAGES = {
            **settings.STORAGES,
            "artifacts": {
                **settings.STORAGES["artifacts"],
                "OPTIONS": {"location": tmp_path / "runs"},
            },
        }


@pytest.fixture(autouse=True)
def _eager_celery_unless_real_worker(settings, request, monkeypatch):
    """Tasks run in the test process, also when CI configures a broker; only tests that start a
    real worker (celery_worker_process) send tasks through the broker. Runs started from a page
    execute inline rather than in a background thread, so nothing outlives its test."""
    monkeypatch.setattr("dissect.services.runs.EAGER_WEB_THREADS", False)
    if "celery_worker_process" not in request.fixturenames:
        settings.CELERY_TASK_ALWAYS_EAGER = True


@pytest.fixture
def make_user(db):
    """make_user('researcher') -> a saved user with that role (password 'pw-<username>')."""
    from core.roles import user_create

    counter = iter(range(1, 10_000))

    def _make(role: str, username: str | None = None):
        name = username or f"{role}{next(counter)}"
        return user_create(username=name, role=role, password=f"pw-{name}")

    return _make


def services_configured() -> bool:
    return bool(os.environ.get("CELERY_BROKER_URL"))


@pytest.fixture
def celery_worker_process(transactional_db, tmp_path):
    """A real `celery worker` subprocess on queues gpu and cpu, against the configured broker and database.

    Skips when no broker is configured (the embedded default); CI always configures one. The test database
    name is handed to the worker so both processes see the same rows.
    """
    if not services_configured():
        pytest.skip("CELERY_BROKER_URL is not set: the real-worker tests need a broker")
    from django.conf import settings
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("the real-worker tests need DATABASE_URL to point at PostgreSQL")
    db = settings.DATABASES["default"]
    env = dict(os.environ)
    env["DATABASE_URL"] = (
        f"postgres://{db['USER']}:{db.get('PASSWORD') or ''}@{db['HOST'] or '127.0.0.1'}:"
        f"{db['PORT'] or 5432}/{connection.settings_dict['NAME']}"
    )
    env["CROWDDISSECT_MEDIA_ROOT"] = str(settings.MEDIA_ROOT)
    env["CROWDDISSECT_DATA_DIR"] = str(tmp_path / "worker-data")
    env["CROWDDISSECT_RUNS_DIR"] = str(settings.CROWDDISSECT["RUNS_DIR"])
    log = open(tmp_path / "worker.log", "w")  # noqa: SIM115 - closed below
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "-Q",
            "gpu,cpu",
            "--pool",
            "solo",
            "--loglevel",
            "INFO",
            "--hostname",
            f"test-{os.getpid()}@%h",
        ],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        _wait_for_worker(worker, tmp_path / "worker.log")
        yield worker
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
        log.close()


def _wait_for_worker(worker: subprocess.Popen, log_path: Path, timeout_s: float = 60) -> None:
    from config.celery import app

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            raise RuntimeError(f"celery worker exited early:\n{log_path.read_text()[-3000:]}")
        replies = app.control.ping(timeout=1.0) or []
        if any(f"test-{os.getpid()}@" in name for reply in replies for name in reply):
            return
    raise RuntimeError(
        f"celery worker did not answer within {timeout_s}s:\n{log_path.read_text()[-3000:]}"
    )
