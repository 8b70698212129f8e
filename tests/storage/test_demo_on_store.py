"""The README demo's dissection (both demo networks on the demo world: ``demo_runs_create``, what
``manage.py demo`` runs before its campaigns) end to end in a fresh process with
CROWDDISSECT_STORAGE=s3 (SeaweedFS): the runs' states,
tiles, montages and images all land in the bucket, and the data directory keeps nothing but the
database and the generated secret key."""

import os
import subprocess
import sys

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow


def test_demo_on_the_object_store_leaves_only_the_database_and_the_key(object_store, tmp_path):
    prefix = f"demo-{os.getpid()}"
    data, scratch = tmp_path / "data", tmp_path / "scratch"
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AWS_", "CROWDDISSECT_", "DATABASE_URL", "CELERY_"))}  # fmt: skip
    env.update(object_store.env(prefix), CROWDDISSECT_DATA_DIR=str(data),
               DJANGO_SETTINGS_MODULE="config.settings",
               CROWDDISSECT_SCRATCH_DIR=str(scratch))  # fmt: skip
    code = ("import django; django.setup(); from django.core.management import call_command; "
            "call_command('migrate', verbosity=0); from dissect.services import demo_runs_create; "
            "runs = demo_runs_create(n_images=24, top_k=3); print([r.status for r in runs])")  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    assert "['done', 'done']" in done.stdout

    files = sorted(p.relative_to(data).as_posix() for p in data.rglob("*") if p.is_file())
    assert files == ["crowddissect.sqlite3", "secret_key"]
    keys = object_store.keys(prefix)
    assert any(k.startswith("media/dissect/tiles/") for k in keys)
    assert any(k.startswith("media/dissect/montages/") for k in keys)
    assert sum(k.endswith("/merged.pt") and k.startswith("runs/") for k in keys) == 2
    assert any(k.endswith("/MIRROR.json") and k.startswith("imagesets/") for k in keys)
