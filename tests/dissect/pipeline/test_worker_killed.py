"""Issue 12, point 2, against a real worker: its main process is killed (SIGKILL) in the middle of
a run; a replacement worker starts; the watchdog (called here every second, with a short stall
bound, as beat would every minute) finds the run stalled and resumes it, and the run finishes
within minutes with the same top images as an unbroken run.

Needs PostgreSQL (DATABASE_URL) and a broker (CELERY_BROKER_URL); skipped otherwise."""

import os
import signal
import subprocess
import sys
import time

import pytest

from dissect import watchdog
from dissect.models import DissectionRun, Shard, UnitImage
from dissect.services import image_set_scan, run_create, run_start

from .conftest import SMALL, write_images

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not os.environ.get("CELERY_BROKER_URL"), reason="needs CELERY_BROKER_URL and a worker"
    ),
]


def _start_worker(tmp_path, name: str) -> subprocess.Popen:
    """A second worker like conftest's celery_worker_process (same database, media, runs)."""
    from django.conf import settings
    from django.db import connection

    from tests.conftest import REPO

    db = settings.DATABASES["default"]
    env = dict(os.environ)
    env["DATABASE_URL"] = (
        f"postgres://{db['USER']}:{db.get('PASSWORD') or ''}@{db['HOST'] or '127.0.0.1'}:"
        f"{db['PORT'] or 5432}/{connection.settings_dict['NAME']}"
    )
    env["CROWDDISSECT_MEDIA_ROOT"] = str(settings.MEDIA_ROOT)
    env["CROWDDISSECT_DATA_DIR"] = str(tmp_path / f"{name}-data")
    env["CROWDDISSECT_RUNS_DIR"] = str(settings.CROWDDISSECT["RUNS_DIR"])
    log = open(tmp_path / f"{name}.log", "w")  # noqa: SIM115 - the process owns it
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", "gpu,cpu", "--pool",
         "solo", "--loglevel", "INFO", "--hostname", f"{name}-{os.getpid()}@%h"],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip


def _tops(run) -> set[tuple]:
    return set(
        UnitImage.objects.filter(unit__layer__run=run).values_list(
            "unit__index", "kind", "rank", "image__path"
        )
    )


def _wait(run, statuses, timeout_s, *, sweep=False):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        run.refresh_from_db()
        if run.status in statuses:
            return run
        if sweep:
            watchdog.watchdog_sweep()
        time.sleep(1.0)
    raise AssertionError(f"run {run.pk} still {run.status} {run.stage} after {timeout_s}s")


def test_a_killed_worker_does_not_stall_the_run(
    celery_worker_process, tiny_network, tmp_path, settings
):
    folder = tmp_path / "many"
    write_images(folder, 48)
    image_set = image_set_scan(name="many-images", root=folder)
    kwargs = dict(network=tiny_network, image_set=image_set, layers=[SMALL], top_k=3,
                  controls=1, shard_size=2, tile_px=20)  # fmt: skip

    reference = run_create(**kwargs)
    run_start(run=reference)
    _wait(reference, {DissectionRun.Status.DONE, DissectionRun.Status.FAILED}, 300)
    assert reference.status == DissectionRun.Status.DONE, reference.error

    run = run_create(**kwargs)
    run_start(run=run)
    deadline = time.monotonic() + 120
    while Shard.objects.filter(run=run, status=Shard.Status.DONE).count() < 2:
        assert time.monotonic() < deadline, "the worker never stored a shard"
        time.sleep(0.05)
    os.kill(celery_worker_process.pid, signal.SIGKILL)  # the main process: an OOM kill
    celery_worker_process.wait(timeout=10)
    killed_at = time.monotonic()
    run.refresh_from_db()
    assert run.status == DissectionRun.Status.RUNNING

    settings.CROWDDISSECT = {**settings.CROWDDISSECT, "RUN_STALL_SECONDS": 5}
    replacement = _start_worker(tmp_path, "replacement")
    try:
        _wait(run, {DissectionRun.Status.DONE, DissectionRun.Status.FAILED}, 300, sweep=True)
    finally:
        replacement.terminate()
        try:
            replacement.wait(timeout=20)
        except subprocess.TimeoutExpired:
            replacement.kill()
    assert run.status == DissectionRun.Status.DONE, run.error
    assert time.monotonic() - killed_at < 300  # minutes, not the hour of the visibility timeout
    assert run.parameters.get("stall_recoveries", 0) >= 1  # the watchdog did it
    assert _tops(run) == _tops(reference)
