"""Web requests that do not need a network must not pay for importing torch (~5 s, ~0.8 GB)."""

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

PROBE = """
import sys, django
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
from django.test import Client
from django.urls import get_resolver
get_resolver().url_patterns  # import every urls/views module
import config.celery
config.celery.app.loader.import_default_modules()  # every tasks module, as a worker would
client = Client()
for url in ("/healthz", "/accounts/login/", "/api/schema/"):
    client.get(url)
print("torch" in sys.modules)
"""


def test_urls_views_tasks_and_plain_pages_do_not_import_torch(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "CELERY_BROKER_URL"}}
    env["CROWDDISSECT_DATA_DIR"] = str(tmp_path)
    result = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == "False"
