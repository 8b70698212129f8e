"""Checks on an uploaded image before any pixel is decoded: size, real type, pixel count.

Accepted: JPEG, PNG and WebP files up to 20 MB and 40 megapixels. The type is read from the
file's first bytes, never from its name or the browser's content type, so a renamed text file
or a GIF called photo.jpg is refused; a decompression bomb is refused from its header by the
engine's 40-megapixel guard (``dissect.images.load_rgb``).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import BinaryIO

from PIL import Image

from core.errors import AppError

__all__ = ["MAX_UPLOAD_BYTES", "MAX_UPLOAD_PIXELS", "UploadRefused", "sniff_type", "load_upload"]

MAX_UPLOAD_BYTES = 20 * 1024 * 1024
MAX_UPLOAD_PIXELS = 40_000_000  # the engine's DEFAULT_MAX_PIXELS (dissect.images imports torch)
ACCEPTED = "JPEG, PNG or WebP"


class UploadRefused(AppError, ValueError):
    """The upload is refused; ``str(exc)`` tells the user why and what to send instead (400)."""

    def __init__(self, message: str, *, field: str | None = "image"):
        super().__init__(message, field=field)


def sniff_type(head: bytes) -> str | None:
    """'jpeg', 'png' or 'webp' from a file's first 12 bytes; None for anything else."""
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if len(head) >= 12 and head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    return None


def _read_limited(source: BinaryIO | bytes, max_bytes: int) -> bytes:
    if isinstance(source, (bytes, bytearray)):
        data = bytes(source)
    else:
        data = source.read(max_bytes + 1)  # never read more than one byte past the limit
    if len(data) > max_bytes:
        raise UploadRefused(
            f"the file is larger than {max_bytes / 1024 / 1024:.0f} MB; send a smaller "
            f"{ACCEPTED} image"
        )
    return data


def load_upload(
    source: BinaryIO | bytes,
    *,
    filename: str = "upload",
    size_bytes: int | None = None,
    max_bytes: int = MAX_UPLOAD_BYTES,
    max_pixels: int = MAX_UPLOAD_PIXELS,
) -> Image.Image:
    """Check and decode an upload (a file object or bytes) into an upright RGB ``PIL.Image``.

    ``size_bytes`` (when the server already knows it) refuses oversize files before reading.
    Raises ``UploadRefused`` naming ``filename`` and the reason."""
    from dissect.images import BadImageError, load_rgb  # imports torch: only when used

    name = Path(filename).name or "upload"
    if size_bytes is not None and size_bytes > max_bytes:
        raise UploadRefused(
            f"{name}: {size_bytes / 1024 / 1024:.1f} MB is over the "
            f"{max_bytes / 1024 / 1024:.0f} MB limit; send a smaller {ACCEPTED} image"
        )
    try:
        data = _read_limited(source, max_bytes)
    except UploadRefused as exc:
        raise UploadRefused(f"{name}: {exc}") from None
    if not data:
        raise UploadRefused(f"{name}: the file is empty; choose a {ACCEPTED} image")
    kind = sniff_type(data[:12])
    if kind is None:
        raise UploadRefused(
            f"{name}: not a {ACCEPTED} file (its content is not an image of these types, "
            "whatever its name says); convert it and upload again"
        )
    # The engine's loader does the bomb guard, EXIF orientation and RGB conversion; it reads
    # from a path, so the bytes go to a private temporary file that is removed right after.
    fd, tmp = tempfile.mkstemp(suffix=f".{kind}", prefix="upload-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        try:
            image = load_rgb(tmp, max_pixels=max_pixels)
        except BadImageError as exc:
            reason = str(exc).replace(f"{tmp}: ", "").replace(tmp, name)
            raise UploadRefused(f"{name}: {reason}") from None
        except Image.DecompressionBombError:
            raise UploadRefused(
                f"{name}: the image has too many pixels (over "
                f"{max_pixels / 1e6:.0f} megapixels); send a smaller image"
            ) from None
    finally:
        os.unlink(tmp)
    return image
