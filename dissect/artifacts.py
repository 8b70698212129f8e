"""Run artifacts by name, through Django's ``storages["artifacts"]``: the one door to shard
states (``shard-NNNNN.pt`` and ``.labels.json``), the merged state (``merged.pt``) and the
automatic-label counts (``auto-label-counts.csv``) of a run.

Local disk (``CROWDDISSECT_RUNS_DIR``, written atomically: a killed worker never leaves half a
file) by default; an S3-compatible bucket under the ``runs/`` prefix with
``CROWDDISSECT_STORAGE=s3`` (one PUT per object: never half an object). Callers pass names and
bytes, never local paths, so a worker on any host reads what another host wrote. Media (tiles,
montages, receptive-field maps) is content-addressed in ``default_storage`` (``dissect.storage``).

Every storage's object-store failures go through ``store_error`` (``stored_save``,
``stored_read``): one error naming the store, the object and the variable to check.
"""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError
from django.core.files.base import ContentFile
from django.core.files.storage import FileSystemStorage, storages

ALIAS = "artifacts"
# What botocore raises (django-storages lets it through); ``store_error`` says what it means.
STORE_ERRORS = (BotoCoreError, ClientError)


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
        write_atomically(Path(self.path(name)), content.chunks())
        return name


def write_atomically(path: Path, chunks) -> None:
    """Write ``chunks`` (bytes) to ``path`` through a temporary file beside it and
    ``os.replace``: a reader sees the old file or the new one, never a partial write."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            for chunk in chunks:
                fh.write(chunk)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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


# botocore's error codes, by what a user should check.
_UNREACHABLE = {"EndpointConnectionError", "ConnectTimeoutError", "ReadTimeoutError",
                "ConnectionClosedError"}  # fmt: skip
_REFUSED = {"401", "403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch",
            "NoCredentialsError", "PartialCredentialsError"}  # fmt: skip
_OVERLOADED = {"500", "502", "503", "504", "InternalError", "ServiceUnavailable", "SlowDown",
               "Throttling", "ThrottlingException", "RequestTimeout"}  # fmt: skip


def store_error(exc: Exception, *, alias: str, name: str, doing: str) -> Exception:
    """A botocore failure on object ``name`` of ``storages[alias]`` (``doing`` it: "writing",
    "reading", ...) as one error that names the store (endpoint, bucket), the object's key and
    the variable to check: ``ArtifactMissing`` for an object that is not there, else
    ``StoreUnavailable``. ``name`` "" means the bucket itself (the start-up check). What
    callers catch is ``STORE_ERRORS``; a local disk's OSError is not translated.

    Transient failures (5xx, throttling, dropped connections) never get here first: botocore
    retries them (the storages' ``client_config``: ``config.env.s3_client_config``); this is
    what is left after its last attempt."""
    storage = storages[alias]
    code = str(getattr(exc, "response", {}).get("Error", {}).get("Code", "") or "")
    kind = type(exc).__name__
    if name and code in {"404", "NoSuchKey"}:
        return ArtifactMissing(name)
    key = "/".join(part for part in (storage.location.strip("/"), name) if part)
    store = (
        f"the object store at {storage.endpoint_url or 'AWS S3'} (bucket {storage.bucket_name!r})"
    )
    what = f"{doing} {key}" if name else f"{doing} the bucket"
    retries = getattr(storage.client_config, "retries", None) or {}
    attempts = f", after {retries['max_attempts']} attempts" if "max_attempts" in retries else ""
    if kind in _UNREACHABLE:
        return StoreUnavailable(
            f"AWS_S3_ENDPOINT_URL: {store} did not answer {what} ({kind}{attempts}); check "
            "that it is running and reachable from this host, then try again (a run: "
            "`manage.py dissect --resume RUN`)"
        )
    if code in {"404", "NoSuchBucket"}:
        return StoreUnavailable(
            f"AWS_STORAGE_BUCKET_NAME: {store} has no such bucket ({what}); create it or fix "
            "the name"
        )
    if code in _REFUSED or kind in _REFUSED:
        return StoreUnavailable(
            f"AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY: {store} refused {what} "
            f"({code or kind}); check the key pair and that it may read and write the bucket"
        )
    if code in _OVERLOADED:
        return StoreUnavailable(
            f"AWS_S3_ENDPOINT_URL: {store} kept failing {what} ({code}{attempts}); check the "
            "store's own health (its log, free disk, load), then try again"
        )
    return StoreUnavailable(
        f"AWS_S3_ENDPOINT_URL / AWS_STORAGE_BUCKET_NAME: {store} failed {what} ({kind}: {exc}); "
        "check the store and the bucket"
    )


def stored_save(alias: str, name: str, data: bytes) -> str:
    """Write ``data`` under ``name`` in ``storages[alias]``; returns the name stored. A store
    failure raises ``StoreUnavailable`` (``store_error``)."""
    try:
        return storages[alias].save(name, ContentFile(data))
    except STORE_ERRORS as exc:
        raise store_error(exc, alias=alias, name=name, doing="writing") from exc


def stored_read(alias: str, name: str) -> bytes:
    """The bytes of ``name`` in ``storages[alias]``; ``FileNotFoundError`` when there are none,
    a store failure as ``StoreUnavailable`` (``store_error``)."""
    try:
        with storages[alias].open(name, "rb") as fh:
            return fh.read()
    except STORE_ERRORS as exc:
        error = store_error(exc, alias=alias, name=name, doing="reading")
        if isinstance(error, ArtifactMissing):
            raise FileNotFoundError(name) from exc
        raise error from exc


def artifact_save(name: str, data: bytes) -> str:
    """Store ``data`` under ``name``, replacing what was there; returns the name."""
    return stored_save(ALIAS, name, data)


def artifact_read(name: str) -> bytes:
    """The bytes stored under ``name``; ``ArtifactMissing`` when there are none."""
    try:
        return stored_read(ALIAS, name)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        raise ArtifactMissing(name) from None


def artifact_exists(name: str) -> bool:
    if not name:
        return False
    try:
        return artifact_storage().exists(name)
    except STORE_ERRORS as exc:
        raise store_error(exc, alias=ALIAS, name=name, doing="checking") from exc


def artifact_delete(name: str) -> None:
    try:
        artifact_storage().delete(name)
    except FileNotFoundError:
        pass
    except STORE_ERRORS as exc:
        raise store_error(exc, alias=ALIAS, name=name, doing="deleting") from exc


def run_artifacts_delete(run_id: int) -> int:
    """Delete every artifact of a run; returns how many were removed."""
    storage = artifact_storage()
    prefix = str(int(run_id))
    try:
        _folders, files = storage.listdir(prefix)
    except FileNotFoundError:
        return 0
    except STORE_ERRORS as exc:
        raise store_error(exc, alias=ALIAS, name=f"{prefix}/", doing="listing") from exc
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
    try:
        storage.connection.meta.client.head_bucket(Bucket=storage.bucket_name)
    except Exception as exc:
        return str(store_error(exc, alias="default", name="", doing="checking"))
    return None
