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
