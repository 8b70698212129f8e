"""Content-addressed writes to media storage (tiles, montages, receptive-field maps, explain
overlays), and the URL that serves them.

A file's name is the sha256 of its bytes, so re-rendering a unit rewrites nothing that did not
change, two units that share a tile share one file, and a name can be cached forever.

Media is private: nothing under ``MEDIA_ROOT`` is served as a static folder. Researchers read
these files through ``dissect.views.media_file`` (role-checked, streamed from ``default_storage``,
so it works the same on a shared volume or an object store with private objects); annotators see
tiles only through the crowd's signed, position-only tile URLs; exports only through their audited
download view.
"""

from __future__ import annotations

import hashlib

from django.core.files.storage import default_storage


def content_name(data: bytes, *, kind: str, ext: str) -> str:
    """The storage name for ``data``: ``dissect/<kind>/<ab>/<sha256>.<ext>``."""
    digest = hashlib.sha256(data).hexdigest()
    return f"dissect/{kind}/{digest[:2]}/{digest}.{ext}"


def _replaces_in_place(storage) -> bool:
    """Whether ``storage`` writes a name in one request, replacing what is there (an object
    store: django-storages' S3Storage with ``file_overwrite``, its default) rather than renaming
    a second copy (a local folder)."""
    return bool(getattr(storage, "file_overwrite", False))


def save_content_addressed(data: bytes, *, kind: str, ext: str) -> str:
    """Write ``data`` once under its content name; returns the name to keep in a ``*_path``
    field (``media_url(name)`` serves it). An object store gets one PUT and no existence check
    first (same name, same bytes: overwriting is harmless, and a HEAD per tile would double the
    requests); a local folder is checked first (a stat) and skipped when the file is there. A
    store failure raises ``StoreUnavailable`` naming the store, the object and what to check."""
    from dissect.artifacts import stored_save

    name = content_name(data, kind=kind, ext=ext)
    if _replaces_in_place(default_storage):
        stored_save("default", name, data)
    elif not default_storage.exists(name):
        saved = stored_save("default", name, data)
        # Two writers racing on the same content: storage renamed the second copy; both are
        # identical, so keep the canonical name and drop the duplicate.
        if saved != name:
            default_storage.delete(saved)
    return name


def media_read(name: str) -> bytes:
    """The bytes of a stored media name; ``FileNotFoundError`` when it is not there, a store
    failure as ``StoreUnavailable`` naming the store, the object and what to check."""
    from dissect.artifacts import stored_read

    return stored_read("default", name)


# Names the researchers' media view serves: what save_content_addressed writes, nothing else
# (exports and anything a later part stores under MEDIA_ROOT stay unreachable through it).
SERVED_PREFIX = "dissect/"


def is_served_name(name: str) -> bool:
    """A stored name the media view may serve: under ``dissect/``, relative, no ``..`` segment."""
    if not name.startswith(SERVED_PREFIX) or "\\" in name or "\x00" in name:
        return False
    parts = name.split("/")
    return all(part not in ("", ".", "..") for part in parts)


def media_url(name: str) -> str:
    """URL of a stored name (the role-checked media view), or '' for an empty name (a unit
    without a montage yet)."""
    if not name:
        return ""
    from django.urls import reverse

    return reverse("dissect:media-file", kwargs={"name": name})


def media_response(name: str, *, content_type: str | None = None, cache_control: str):
    """An HTTP response with a stored media file (tiles, montages, overlays: small files, read
    whole): the one way every view serves them. A missing file is a 404; a store that fails
    (after botocore's retries) is a 503 whose text says to retry, and the log line names the
    store, the object and the variable to check — never a raw botocore error mid-stream."""
    import io
    import logging
    import mimetypes

    from django.core.exceptions import SuspiciousFileOperation
    from django.http import FileResponse, Http404, HttpResponse

    from dissect.artifacts import StoreUnavailable

    try:
        data = media_read(name)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError, SuspiciousFileOperation):
        raise Http404("No such file.") from None
    except StoreUnavailable as exc:
        logging.getLogger(__name__).error("serving %s: %s", name, exc)
        response = HttpResponse(
            "The file store is not answering right now; reload the page in a minute.",
            status=503,
            content_type="text/plain; charset=utf-8",
        )
        response["Retry-After"] = "60"
        return response
    kind = content_type or mimetypes.guess_type(name)[0] or "application/octet-stream"
    response = FileResponse(io.BytesIO(data), content_type=kind)  # with Content-Length
    response["Cache-Control"] = cache_control
    response["X-Content-Type-Options"] = "nosniff"
    return response
