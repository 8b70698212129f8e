"""Run artifacts by name, through Django's ``storages["artifacts"]``: the one door to shard
states (``shard-NNNNN.pt`` and ``.labels.json``), the merged state (``merged.pt``) and the
automatic-label counts (``auto-label-counts.csv``) of a run.

Local disk (``CROWDDISSECT_RUNS_DIR``, written atomically: a killed worker never leaves half a
file) by default; an S3-compatible bucket under the ``runs/`` prefix with
``CROWDDISSECT_STORAGE=s3`` (one PUT per object: never half an object). Callers pass names and
bytes, never local paths, so a worker on any host reads what another host wrote. Media (tiles,
montages, receptive-field maps) is content-addressed in ``default_storage`` (``dissect.storage``).
"""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path

from django.core.files.base import ContentFile
from django.core.files.storage import FileSystemStorage, storages

ALIAS = "artifacts"


class ArtifactMissing(LookupError):
    """No artifact of that name in the store."""


class ArtifactCorrupt(ValueError):
    """The stored bytes are not a readable artifact (truncated, overwritten, foreign)."""


class StoreUnavailable(OSError):
    """The store did not answer or refused the request; the message names the variable."""


class AtomicFileSystemStorage(FileSystemStorage):
    """Local artifacts: overwrite in place, through a temporary file and ``os.replace``, so a
    reader sees the old file or the new one, never a partial write."""

    def __init__(self, **kwargs):
        kwargs.setdefault("allow_overwrite", True)
        super().__init__(**kwargs)

    def _save(self, name, content):
        full = Path(self.path(name))
        full.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=full.parent, prefix=f".{full.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                for chunk in content.chunks():
                    fh.write(chunk)
            os.replace(tmp, full)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return name


def artifact_storage():
    return storages[ALIAS]


# -- names ----------------------------------------------------------------------------------


def run_artifact_name(run_id: int, filename: str) -> str:
    return f"{int(run_id)}/{filename}"


def shard_state_name(run_id: int, index: int) -> str:
    return run_artifact_name(run_id, f"shard-{index:05d}.pt")


def shard_labels_name(run_id: int, index: int) -> str:
    return run_artifact_name(run_id, f"shard-{index:05d}.labels.json")


def merged_state_name(run_id: int) -> str:
    return run_artifact_name(run_id, "merged.pt")


def counts_csv_name(run_id: int) -> str:
    return run_artifact_name(run_id, "auto-label-counts.csv")


# -- bytes in, bytes out --------------------------------------------------------------------


def _store_errors(exc: Exception, name: str) -> Exception:
    """A boto/network failure as one line naming the variable to check; other errors as they
    are."""
    text = f"{type(exc).__name__}: {exc}"
    kind = type(exc).__name__
    if kind in {"EndpointConnectionError", "ConnectTimeoutError", "ReadTimeoutError",
                "ConnectionClosedError"}:  # fmt: skip
        return StoreUnavailable(
            f"AWS_S3_ENDPOINT_URL: the object store did not answer while reading or writing "
            f"{name} ({text}); check that it is running and reachable, then resume the run"
        )
    if kind in {"ClientError", "NoCredentialsError", "PartialCredentialsError"}:
        code = str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))
        if code in {"NoSuchKey", "404"}:
            return ArtifactMissing(name)
        if code in {"NoSuchBucket"}:
            return StoreUnavailable(
                f"AWS_STORAGE_BUCKET_NAME: the bucket is gone ({text}) while using {name}; "
                "create it again and resume the run"
            )
        return StoreUnavailable(
            f"AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY: the object store refused {name} "
            f"({text}); check the credentials and the bucket policy"
        )
    return exc


def artifact_save(name: str, data: bytes) -> str:
    """Store ``data`` under ``name``, replacing what was there; returns the name."""
    try:
        return artifact_storage().save(name, ContentFile(data))
    except Exception as exc:
        raise _store_errors(exc, name) from exc


def artifact_read(name: str) -> bytes:
    """The bytes stored under ``name``; ``ArtifactMissing`` when there are none."""
    try:
        with artifact_storage().open(name, "rb") as fh:
            return fh.read()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        raise ArtifactMissing(name) from None
    except Exception as exc:
        raise _store_errors(exc, name) from exc


def artifact_exists(name: str) -> bool:
    if not name:
        return False
    try:
        return artifact_storage().exists(name)
    except Exception as exc:
        raise _store_errors(exc, name) from exc


def artifact_delete(name: str) -> None:
    try:
        artifact_storage().delete(name)
    except FileNotFoundError:
        pass
    except Exception as exc:
        raise _store_errors(exc, name) from exc


def run_artifacts_delete(run_id: int) -> int:
    """Delete every artifact of a run; returns how many were removed."""
    storage = artifact_storage()
    prefix = str(int(run_id))
    try:
        _folders, files = storage.listdir(prefix)
    except FileNotFoundError:
        return 0
    for filename in files:
        artifact_delete(f"{prefix}/{filename}")
    return len(files)


def torch_save(name: str, obj) -> str:
    """``torch.save(obj)`` into the store under ``name`` (plain tensors and dicts)."""
    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    return artifact_save(name, buf.getvalue())


def torch_load(name: str):
    """What ``torch_save`` stored (``weights_only``: no pickled code runs); ``ArtifactMissing``
    when absent, ``ArtifactCorrupt`` when the bytes are not a readable state."""
    import torch

    data = artifact_read(name)
    try:
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises RuntimeError, EOFError, UnpicklingError, zipfile errors
        raise ArtifactCorrupt(
            f"{name}: the stored state is not readable ({type(exc).__name__}: {exc})"
        ) from exc


def text_save(name: str, text: str) -> str:
    return artifact_save(name, text.encode("utf-8"))


def text_read(name: str) -> str | None:
    """The text stored under ``name``, or None when there is none."""
    try:
        return artifact_read(name).decode("utf-8")
    except ArtifactMissing:
        return None


# -- start-up and /healthz ------------------------------------------------------------------


def store_problem() -> str | None:
    """None when every configured storage answers; else one line naming the variable to fix
    (unreachable endpoint, refused credentials, missing bucket). Local disk: None."""
    from django.conf import settings

    if getattr(settings, "STORAGE_KIND", "local") != "s3":
        return None
    storage = storages["default"]
    bucket = storage.bucket_name
    try:
        storage.connection.meta.client.head_bucket(Bucket=bucket)
    except Exception as exc:  # boto's errors: connection, credentials, HTTP status
        kind = type(exc).__name__
        code = str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))
        if code in {"404", "NoSuchBucket"}:
            return (
                f"AWS_STORAGE_BUCKET_NAME: the object store has no bucket {bucket!r}; "
                "create it or fix the name"
            )
        if code in {
            "403",
            "401",
            "AccessDenied",
            "InvalidAccessKeyId",
            "SignatureDoesNotMatch",
        } or ("Credentials" in kind):
            return (
                "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY: the object store refused them "
                f"for bucket {bucket!r} ({code or kind}); check the key pair"
            )
        return (
            f"AWS_S3_ENDPOINT_URL: the object store at {storage.endpoint_url or 'AWS'} does not "
            f"answer ({kind}: {exc}); start it or fix the URL"
        )
    return None
