"""Read CrowdDissect's settings from the environment, failing with one clear line per bad variable.

Every reader raises SettingError whose message starts with the variable's name and says what to do;
config.cli prints that line instead of a traceback.
"""

import os
import secrets
from pathlib import Path
from urllib.parse import urlsplit

import environ


class SettingError(Exception):
    """A malformed environment variable. The message names the variable and the fix."""


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise SettingError(
        f"{name}: {raw!r} is not a yes/no value; use 1/0, true/false, yes/no or on/off."
    )


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise SettingError(f"{name}: {raw!r} is not a whole number.") from None


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def data_dir() -> Path:
    """CROWDDISSECT_DATA_DIR (default ./var): SQLite file, secret key, media, run artifacts."""
    path = Path(os.environ.get("CROWDDISSECT_DATA_DIR", "var")).expanduser().resolve()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SettingError(
            f"CROWDDISSECT_DATA_DIR: cannot create {path} ({exc.strerror}); "
            "point it at a writable folder."
        ) from None
    return path


def database_config(default_sqlite: Path) -> dict:
    """DATABASE_URL (postgres://USER:PASSWORD@HOST:PORT/NAME or sqlite:////abs/path.sqlite3)."""
    url = os.environ.get("DATABASE_URL", "").strip()
    if not url:
        return {"ENGINE": "django.db.backends.sqlite3", "NAME": str(default_sqlite)}
    hint = "expected postgres://USER:PASSWORD@HOST:PORT/NAME or sqlite:////absolute/path.sqlite3"
    scheme = urlsplit(url).scheme
    if scheme not in {"postgres", "postgresql", "pgsql", "sqlite"}:
        raise SettingError(
            f"DATABASE_URL: unsupported scheme {scheme or '(none)'!r} in {url!r}; {hint}."
        )
    try:
        urlsplit(url).port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise SettingError(f"DATABASE_URL: the port in {url!r} is not a number; {hint}.") from None
    try:
        config = environ.Env.db_url_config(url)
    except Exception as exc:  # environ raises a mix of ValueError/KeyError/ImproperlyConfigured
        raise SettingError(f"DATABASE_URL: cannot parse {url!r} ({exc}); {hint}.") from None
    if scheme != "sqlite":
        if not config.get("NAME"):
            raise SettingError(f"DATABASE_URL: no database name in {url!r}; {hint}.")
        config.setdefault("OPTIONS", {}).setdefault("connect_timeout", 5)
        config["CONN_MAX_AGE"] = env_int("DATABASE_CONN_MAX_AGE", 60)
    return config


def broker_url() -> str | None:
    """CELERY_BROKER_URL (redis://HOST:6379/0 or amqp://USER:PASSWORD@HOST:5672//); unset = eager."""
    url = os.environ.get("CELERY_BROKER_URL", "").strip()
    if not url:
        return None
    scheme = urlsplit(url).scheme
    if scheme not in {"redis", "rediss", "amqp", "amqps", "pyamqp"}:
        raise SettingError(
            f"CELERY_BROKER_URL: unsupported scheme {scheme or '(none)'!r} in {url!r}; "
            "expected redis://HOST:6379/0 or amqp://USER:PASSWORD@HOST:5672//."
        )
    try:
        urlsplit(url).port  # noqa: B018
    except ValueError:
        raise SettingError(f"CELERY_BROKER_URL: the port in {url!r} is not a number.") from None
    return url


def result_backend(broker: str | None) -> str | None:
    """CELERY_RESULT_BACKEND; defaults to the Redis broker itself (chords need a real backend)."""
    url = os.environ.get("CELERY_RESULT_BACKEND", "").strip()
    if url:
        return url
    if broker is None:
        return None
    if broker.startswith(("redis://", "rediss://")):
        return broker
    return "rpc://"


def secret_key(folder: Path) -> str:
    """DJANGO_SECRET_KEY, or a key generated once and kept in the data directory."""
    key = os.environ.get("DJANGO_SECRET_KEY", "").strip()
    if key:
        return key
    path = folder / "secret_key"
    if path.exists():
        return path.read_text().strip()
    key = secrets.token_urlsafe(50)
    path.write_text(key)
    path.chmod(0o600)
    return key


STORAGE_KINDS = ("local", "s3")


def storage_kind() -> str:
    """CROWDDISSECT_STORAGE: ``local`` (default: files under the data directory) or ``s3``."""
    raw = os.environ.get("CROWDDISSECT_STORAGE", "").strip().lower() or "local"
    if raw not in STORAGE_KINDS:
        raise SettingError(
            f"CROWDDISSECT_STORAGE: {raw!r} is not a storage kind; use local (files under "
            "CROWDDISSECT_DATA_DIR) or s3 (an S3-compatible object store, AWS_* variables)."
        )
    return raw


def s3_options() -> dict:
    """django-storages' S3Storage options from its own variable names (AWS_STORAGE_BUCKET_NAME,
    AWS_S3_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_S3_REGION_NAME,
    AWS_LOCATION). Objects stay private: reads go through the app or short presigned URLs."""
    bucket = os.environ.get("AWS_STORAGE_BUCKET_NAME", "").strip()
    if not bucket:
        raise SettingError(
            "AWS_STORAGE_BUCKET_NAME: not set; CROWDDISSECT_STORAGE=s3 needs the bucket that "
            "holds media and run artifacts (create it first, e.g. `aws s3 mb s3://NAME`)."
        )
    endpoint = os.environ.get("AWS_S3_ENDPOINT_URL", "").strip() or None
    if endpoint is not None:
        parts = urlsplit(endpoint)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise SettingError(
                f"AWS_S3_ENDPOINT_URL: {endpoint!r} is not an http(s) URL; expected e.g. "
                "http://127.0.0.1:8333 (SeaweedFS, MinIO) or leave it unset for AWS itself."
            )
        try:
            parts.port  # noqa: B018 - raises ValueError on a bad port
        except ValueError:
            raise SettingError(
                f"AWS_S3_ENDPOINT_URL: the port in {endpoint!r} is not a number."
            ) from None
    key = os.environ.get("AWS_ACCESS_KEY_ID", "").strip() or None
    secret = os.environ.get("AWS_SECRET_ACCESS_KEY", "").strip() or None
    if (key is None) != (secret is None):
        missing = "AWS_SECRET_ACCESS_KEY" if secret is None else "AWS_ACCESS_KEY_ID"
        raise SettingError(f"{missing}: not set; set both AWS_ACCESS_KEY_ID and "
                           "AWS_SECRET_ACCESS_KEY, or neither (boto3's own credential chain).")  # fmt: skip
    addressing_style = os.environ.get("AWS_S3_ADDRESSING_STYLE", "").strip() or "path"
    return {
        "bucket_name": bucket,
        "endpoint_url": endpoint,
        "access_key": key,
        "secret_key": secret,
        "region_name": os.environ.get("AWS_S3_REGION_NAME", "").strip() or "us-east-1",
        # Path-style requests: S3-compatible stores behind a plain host name (docker's
        # `seaweedfs`) have no per-bucket DNS names.
        "addressing_style": addressing_style,
        "signature_version": "s3v4",
        "client_config": s3_client_config(addressing_style),
        "default_acl": None,  # private objects
        "querystring_auth": True,
        "querystring_expire": env_int("AWS_QUERYSTRING_EXPIRE", 300),
        "file_overwrite": True,
    }


S3_MAX_ATTEMPTS = 5


def s3_client_config(addressing_style: str):
    """django-storages' ``client_config`` (AWS_S3_CLIENT_CONFIG). Given one, it no longer applies
    ``addressing_style`` or ``signature_version`` itself, so they are set here. botocore's
    ``standard`` retries take care of transient failures (HTTP 5xx, throttling, dropped or
    refused connections: up to S3_MAX_ATTEMPTS attempts, exponential backoff with jitter); what
    still fails after them is reported once, naming the store (``dissect.artifacts.store_error``).
    A short connect timeout: a store that is down fails in seconds, not minutes."""
    from botocore.config import Config

    return Config(
        s3={"addressing_style": addressing_style},
        signature_version="s3v4",
        connect_timeout=5,
        read_timeout=60,
        retries={"mode": "standard", "max_attempts": S3_MAX_ATTEMPTS},
    )


def s3_prefix(kind: str) -> str:
    """The key prefix of one kind of object (``media``, ``runs``, ``imagesets``) under the
    optional AWS_LOCATION prefix, so one bucket can hold several deployments."""
    base = os.environ.get("AWS_LOCATION", "").strip().strip("/")
    return f"{base}/{kind}" if base else kind


def scratch_dir(default: Path) -> Path:
    """CROWDDISSECT_SCRATCH_DIR: a worker's own disposable folder (image-set caches, files a
    command writes before they go to the store); never shared between hosts. Created on use."""
    return Path(os.environ.get("CROWDDISSECT_SCRATCH_DIR", "") or default).expanduser().resolve()
