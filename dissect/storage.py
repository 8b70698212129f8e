"""Content-addressed writes to media storage (tiles, montages, receptive-field maps).

A file's name is the sha256 of its bytes, so re-rendering a unit rewrites nothing that did not
change, two units that share a tile share one file, and a name can be cached forever.
"""

from __future__ import annotations

import hashlib

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage


def content_name(data: bytes, *, kind: str, ext: str) -> str:
    """The storage name for ``data``: ``dissect/<kind>/<ab>/<sha256>.<ext>``."""
    digest = hashlib.sha256(data).hexdigest()
    return f"dissect/{kind}/{digest[:2]}/{digest}.{ext}"


def save_content_addressed(data: bytes, *, kind: str, ext: str) -> str:
    """Write ``data`` once under its content name (skipped when it is already stored); returns
    the name to keep in a ``*_path`` field (``default_storage.url(name)`` serves it)."""
    name = content_name(data, kind=kind, ext=ext)
    if not default_storage.exists(name):
        saved = default_storage.save(name, ContentFile(data))
        # Two writers racing on the same content: storage renamed the second copy; both are
        # identical, so keep the canonical name and drop the duplicate.
        if saved != name:
            default_storage.delete(saved)
    return name


def media_url(name: str) -> str:
    """URL of a stored name, or '' for an empty name (a unit without a montage yet)."""
    return default_storage.url(name) if name else ""
