"""Issue 15: workers on separate hosts. Two gpu-queue workers and one cpu-queue worker run as
separate processes, each with its own empty data and scratch folders and no path shared with the
test (the web process) or each other: they reach PostgreSQL, Redis and the object store
(SeaweedFS) only. A sharded run over them equals a one-process run exactly (top-K image ids and
scores, thresholds, automatic labels, tile bytes); then faults: a gpu worker killed (SIGKILL)
while it extracts a shard, every worker stopped and started again, the cpu worker killed while
it renders. Each time the run completes with the identical result and no duplicate rows.

Needs DATABASE_URL (PostgreSQL), CELERY_BROKER_URL (Redis) and the `weed` binary."""

import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import timedelta

import pytest
from django.utils import timezone

from dissect import watchdog
from dissect.models import AutoLabel, DissectionRun, Shard, Unit, UnitImage

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.skipif(
        not os.environ.get("CELERY_BROKER_URL"), reason="needs CELERY_BROKER_URL and PostgreSQL"
    ),
]

N_IMAGES, SHARD_SIZE = 16, 4  # four shards
RUN = dict(layers=["conv5"], top_k=3, controls=1, shard_size=SHARD_SIZE, tile_px=32,
           batch_size=2, options={"auto_labels": True})  # fmt: skip


class Hosts:
    """The worker processes, each started as if on its own host."""

    def __init__(self, tmp_path, env: dict):
        self.tmp_path, self.env, self.procs, self.started = tmp_path, env, {}, 0

    def start(self, name: str, queue: str) -> subprocess.Popen:
        self.started += 1
        host = self.tmp_path / f"host-{name}-{self.started}"  # empty, never shared
        for folder in ("data", "scratch", "media", "runs"):
            (host / folder).mkdir(parents=True)
        env = {**self.env, "CROWDDISSECT_DATA_DIR": str(host / "data"),
               "CROWDDISSECT_SCRATCH_DIR": str(host / "scratch"),
               "CROWDDISSECT_MEDIA_ROOT": str(host / "media"),
               "CROWDDISSECT_RUNS_DIR": str(host / "runs")}  # fmt: skip
        log = open(host / "worker.log", "w")  # noqa: SIM115 - the process owns it
        proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", queue, "--pool",
             "solo", "--loglevel", "INFO", "--hostname", f"{name}-{os.getpid()}@%h"],
            cwd=host, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        proc.log_path, proc.host = host / "worker.log", host
        self.procs[name] = proc
        return proc

    def wait_ready(self, timeout_s: float = 120) -> None:
        from config.celery import app

        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    raise RuntimeError(
                        f"worker {name} exited:\n{proc.log_path.read_text()[-3000:]}"
                    )
            replies = app.control.ping(timeout=1.0) or []
            names = {n.split("@")[0] for reply in replies for n in reply}
            if {f"{n}-{os.getpid()}" for n in self.procs} <= names:
                return
        raise RuntimeError("workers did not answer in time")

    def kill(self, name: str, sig=signal.SIGKILL) -> None:
        proc = self.procs.pop(name)
        proc.send_signal(sig)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)

    def stop_all(self) -> None:
        """Every worker stopped (SIGTERM: a warm shutdown), all told at once and then waited for."""
        procs = [self.procs.pop(name) for name in list(self.procs)]
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


@pytest.fixture
def hosts(s3_storage, transactional_db, settings, tmp_path):
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("the multi-host test needs DATABASE_URL to point at PostgreSQL")
    store, prefix = s3_storage
    db = settings.DATABASES["default"]
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AWS_", "CROWDDISSECT_", "DJANGO_"))}  # fmt: skip
    env.update(store.env(prefix), DJANGO_SECRET_KEY="multi-host-test-key",
               DATABASE_URL=(f"postgres://{db['USER']}:{db.get('PASSWORD') or ''}@"
                             f"{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/"
                             f"{connection.settings_dict['NAME']}"))  # fmt: skip
    settings.CELERY_TASK_ALWAYS_EAGER = False
    # Stalled after 120 s without progress (beat: 10 minutes). _wait lets the watchdog see that
    # much time pass as soon as nothing can move the run; waiting for it in real time is only
    # the fallback, long enough that a task merely slow on a loaded machine (a fresh worker's
    # first shard takes 40 s there) is not resumed.
    settings.CROWDDISSECT = {**settings.CROWDDISSECT, "RUN_STALL_SECONDS": 120}
    group = Hosts(tmp_path, env)
    try:
        yield group
    finally:
        group.stop_all()


def _result(run) -> dict:
    """What must not depend on how the run was spread over workers."""
    units = Unit.objects.filter(layer__run=run)
    return {
        "top": sorted(UnitImage.objects.filter(unit__layer__run=run).values_list(
            "unit__layer__name", "unit__index", "kind", "rank", "image__path", "score",
            "tile_path")),
        "thresholds": sorted(units.values_list("layer__name", "index", "threshold", "top_score")),
        "auto_labels": sorted(AutoLabel.objects.filter(unit__layer__run=run).values_list(
            "unit__layer__name", "unit__index", "category", "label", "iou")),
        "montages": sorted(units.values_list("layer__name", "index", "montage_path")),
    }  # fmt: skip


_RECEIVED = re.compile(r"\] Task [\w.]+\[([^\]]+)\] received")
_ENDED = re.compile(r"\] Task [\w.]+\[([^\]]+)\] (?:succeeded|raised|retry|ignored|rejected)")


def _idle(hosts: Hosts) -> bool:
    """No live worker holds a task (each task it received has ended, read from its log: a solo
    worker busy with a task does not answer `inspect`) and no message waits in a queue: only a
    message a dead worker took (redelivered after the broker's visibility timeout) can still
    move a run now."""
    from kombu.exceptions import ChannelError

    from config.celery import app

    for proc in hosts.procs.values():
        log = proc.log_path.read_text()
        if Counter(_RECEIVED.findall(log)) - Counter(_ENDED.findall(log)):
            return False
    with app.connection_for_read() as conn:
        for queue in ("gpu", "cpu"):
            try:
                if conn.default_channel.queue_declare(queue=queue, passive=True).message_count:
                    return False
            except ChannelError:  # no message has ever waited there (or none left)
                pass
    return True


def _wait(run, timeout_s=300, *, hosts: Hosts | None = None, until=None) -> DissectionRun:
    """Poll the run until it finishes (or ``until(run)``). With ``hosts`` the watchdog watches
    it: swept in real time, and as soon as the run stands still while every live worker is idle
    and no message is queued (twice, a second apart), the watchdog's clock (``now``, as in
    test_watchdog.py) is moved on by the stall bound: the run is stalled for good then, and
    waiting out the bound in real time would only make the test slow."""
    deadline = time.monotonic() + timeout_s
    still = None  # (fingerprint, since when) while nothing can move the run
    while time.monotonic() < deadline:
        run.refresh_from_db()
        if until is not None and until(run):
            return run
        if until is None and run.status in (DissectionRun.Status.DONE, DissectionRun.Status.FAILED):
            return run
        if hosts is not None:
            watchdog.watchdog_sweep()
            current = watchdog.fingerprint(run) if _idle(hosts) else None
            if current is None or still is None or still[0] != current:
                still = (current, time.monotonic()) if current else None
            elif time.monotonic() - still[1] >= 1.0:
                watchdog.watchdog_sweep(
                    now=timezone.now() + timedelta(seconds=watchdog.stall_seconds())
                )  # resumed (or failed after too many resumes: the caller's assertion says so)
                still = None
        time.sleep(0.3)
    raise AssertionError(f"run {run.pk}: {run.status} {run.stage} after {timeout_s}s")


def _extracting(proc) -> bool:
    """The worker has taken an extract_shard task and not finished it (read from its log: a
    solo worker busy with a task does not answer `inspect`)."""
    log = proc.log_path.read_text()
    received = len(re.findall(r"dissect\.tasks\.extract_shard\[[^\]]+\] received", log))
    ended = len(re.findall(r"dissect\.tasks\.extract_shard\[[^\]]+\] (?:succeeded|raised)", log))
    return received > ended


def test_a_run_over_separate_hosts_equals_one_process_and_survives_faults(
    hosts, s3_storage, settings, tmp_path, django_capture_on_commit_callbacks
):
    from dissect.demo.world import write_demo_world
    from dissect.services import image_set_scan, run_create, run_start
    from dissect.services.demo import _demo_manifest_write
    from dissect.services.networks import network_by_name

    store, prefix = s3_storage
    world = tmp_path / "web-host" / "demo-world"  # only the web host has the folder
    write_demo_world(world, n_images=N_IMAGES, seed=0, size=128, variant="scenes")
    _demo_manifest_write(world, world / "manifest.csv")
    image_set = image_set_scan(name="multi-host-world", root=world / "images",
                               manifest=world / "manifest.csv", labels_dir=world)  # fmt: skip
    network = network_by_name("demo-places")

    # The one-process reference: every task in this process.
    settings.CELERY_TASK_ALWAYS_EAGER = True
    reference = run_create(network=network, image_set=image_set, **RUN)
    with django_capture_on_commit_callbacks(execute=True):
        run_start(run=reference)
    reference.refresh_from_db()
    assert reference.status == DissectionRun.Status.DONE, reference.error
    expected = _result(reference)
    assert expected["auto_labels"] and all(row[6] for row in expected["top"])  # tiles rendered
    settings.CELERY_TASK_ALWAYS_EAGER = False

    for name, queue in (("gpu-a", "gpu"), ("gpu-b", "gpu"), ("cpu", "cpu")):
        hosts.start(name, queue)
    hosts.wait_ready()

    # 1. Sharded over the three workers: the same result.
    run = run_create(network=network, image_set=image_set, **RUN)
    run_start(run=run)
    run = _wait(run)
    assert run.status == DissectionRun.Status.DONE, run.error
    assert _result(run) == expected
    for proc in hosts.procs.values():  # nothing reached a worker's own folders but caches
        assert not list((proc.host / "runs").rglob("*.pt"))
        assert not [p for p in (proc.host / "media").rglob("*") if p.is_file()]

    # 2. A gpu worker killed while it extracts a shard: the run completes, identical, no
    # duplicate rows (the watchdog resumes it; the dead worker's message is of an old attempt).
    run = run_create(network=network, image_set=image_set, **RUN)
    run_start(run=run)
    deadline = time.monotonic() + 120
    while not _extracting(hosts.procs["gpu-a"]):
        assert time.monotonic() < deadline, "gpu-a never took a shard"
        time.sleep(0.05)
    hosts.kill("gpu-a")
    run = _wait(run, hosts=hosts)
    assert run.status == DissectionRun.Status.DONE, run.error
    assert _result(run) == expected
    assert UnitImage.objects.filter(unit__layer__run=run).count() == len(expected["top"])

    # 3. Every worker stopped mid-run and started again: resumes from the stored shards.
    run = run_create(network=network, image_set=image_set, **RUN)
    run_start(run=run)
    _wait(run, until=lambda r: r.shards.filter(status=Shard.Status.DONE).exists())
    hosts.stop_all()
    stored = dict(run.shards.filter(status=Shard.Status.DONE).values_list("index", "finished_at"))
    assert stored
    for name, queue in (("gpu-a", "gpu"), ("gpu-b", "gpu"), ("cpu", "cpu")):
        hosts.start(name, queue)
    hosts.wait_ready()
    run = _wait(run, hosts=hosts)
    assert run.status == DissectionRun.Status.DONE, run.error
    kept = dict(run.shards.filter(index__in=list(stored)).values_list("index", "finished_at"))
    assert kept == stored  # not computed again
    assert _result(run) == expected

    # 4. The cpu worker killed while it renders: rendering completes (a new cpu host).
    run = run_create(network=network, image_set=image_set, **RUN)
    run_start(run=run)
    _wait(run, until=lambda r: r.stage == "render" or r.status == DissectionRun.Status.DONE)
    hosts.kill("cpu")
    hosts.start("cpu", "cpu")
    hosts.wait_ready()
    run = _wait(run, hosts=hosts)
    assert run.status == DissectionRun.Status.DONE, run.error
    assert _result(run) == expected
    keys = set(store.keys(prefix))
    assert all(f"media/{row[6]}" in keys for row in expected["top"])
