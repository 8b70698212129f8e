"""The settings module reads the environment: embedded default vs production services, clear errors."""

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PROBE = (
    "import json, django; django.setup(); from django.conf import settings as s; "
    "print(json.dumps({'engine': s.DATABASES['default']['ENGINE'], 'name': str(s.DATABASES['default']['NAME']),"
    " 'eager': s.CELERY_TASK_ALWAYS_EAGER, 'broker': s.CELERY_BROKER_URL, 'backend': s.CELERY_RESULT_BACKEND,"
    " 'media': str(s.MEDIA_ROOT), 'debug': s.DEBUG}))"
)


def run(args, tmp_path, **env_vars):
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DATABASE_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND"}
    }
    env.update(
        {
            "CROWDDISSECT_DATA_DIR": str(tmp_path / "data"),
            "DJANGO_SETTINGS_MODULE": "config.settings",
        }
    )
    env.update(env_vars)
    return subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)


def settings_with(tmp_path, **env_vars) -> dict:
    result = run([sys.executable, "-c", PROBE], tmp_path, **env_vars)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_nothing_set_gives_the_embedded_default(tmp_path):
    s = settings_with(tmp_path)
    assert s["engine"] == "django.db.backends.sqlite3"
    assert s["name"] == str(tmp_path / "data" / "crowddissect.sqlite3")
    assert s["eager"] is True and s["broker"] is None
    assert s["media"] == str(tmp_path / "data" / "media")
    assert s["debug"] is False
    # The generated secret key is kept, so sessions survive restarts.
    key_file = tmp_path / "data" / "secret_key"
    first = key_file.read_text()
    settings_with(tmp_path)
    assert key_file.read_text() == first and len(first) >= 50


def test_database_and_broker_urls_select_production_services(tmp_path):
    s = settings_with(
        tmp_path,
        DATABASE_URL="postgres://postgres:secret@db.internal:5433/crowd",
        CELERY_BROKER_URL="redis://cache.internal:6379/2",
    )
    assert s["engine"] == "django.db.backends.postgresql"
    assert s["name"] == "crowd"
    assert s["eager"] is False
    assert s["broker"] == s["backend"] == "redis://cache.internal:6379/2"
    amqp = settings_with(tmp_path, CELERY_BROKER_URL="amqp://guest:guest@127.0.0.1:5672//")
    assert amqp["broker"].startswith("amqp://") and amqp["backend"] == "rpc://"


def one_line_error(tmp_path, **env_vars) -> str:
    result = run([sys.executable, "manage.py", "check"], tmp_path, **env_vars)
    assert result.returncode == 2, result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr  # one clear line, no traceback wall
    return lines[0]


def test_malformed_settings_give_one_line_naming_the_variable(tmp_path):
    assert one_line_error(tmp_path, DATABASE_URL="mysql://root@localhost/x").startswith(
        "error: DATABASE_URL: unsupported scheme 'mysql'"
    )
    assert "DATABASE_URL: the port" in one_line_error(
        tmp_path, DATABASE_URL="postgres://u@h:notaport/db"
    )
    assert "CELERY_BROKER_URL" in one_line_error(tmp_path, CELERY_BROKER_URL="kafka://broker:9092")
    assert "DJANGO_DEBUG" in one_line_error(tmp_path, DJANGO_DEBUG="maybe")


def test_unreachable_database_gives_one_line(tmp_path):
    result = run(
        [sys.executable, "manage.py", "migrate"],
        tmp_path,
        DATABASE_URL="postgres://postgres@127.0.0.1:1/nothing",
    )
    assert result.returncode == 2
    assert result.stderr.startswith("error: DATABASE_URL: cannot use the database")
    assert "Traceback" not in result.stderr


def test_unmigrated_database_says_to_migrate(tmp_path):
    """A command that needs tables, on a fresh embedded database, names `migrate` as the fix."""
    result = run(
        [
            sys.executable,
            "manage.py",
            "create_user",
            "ann",
            "--role",
            "annotator",
            "--password",
            "pw",
        ],
        tmp_path,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.startswith("error: the database has no tables for this command yet")
    assert "python manage.py migrate" in result.stderr and "Traceback" not in result.stderr


def test_check_deploy_is_clean_with_production_variables(tmp_path):
    result = run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        tmp_path,
        DJANGO_SECRET_KEY=secrets.token_urlsafe(60),
        DJANGO_DEBUG="0",
        DJANGO_ALLOWED_HOSTS="dissect.example.org",
        DJANGO_SECURE_SSL_REDIRECT="1",
        DJANGO_SECURE_COOKIES="1",
        DJANGO_HSTS_SECONDS="31536000",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout
