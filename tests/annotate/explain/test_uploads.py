"""Upload checks: accepted types decode; oversize, wrong type, renamed non-image, truncated and
decompression-bomb files are refused with a message naming the file."""

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from annotate.explain.uploads import MAX_UPLOAD_BYTES, UploadRefused, load_upload, sniff_type


def encoded(fmt: str, size=(40, 30), mode="RGB") -> bytes:
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).convert(
        mode
    )
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def png_bomb(width: int, height: int) -> bytes:
    """A valid small PNG whose header claims ``width`` x ``height`` pixels (grayscale)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    # A few compressed rows of zeros: the file is tiny, the claimed canvas is huge.
    data = zlib.compress(b"\x00" * (width + 1) * 4, 9)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_accepted_types_decode(fmt):
    image = load_upload(encoded(fmt), filename=f"photo.{fmt.lower()}")
    assert image.mode == "RGB" and image.size == (40, 30)


def test_type_comes_from_content_not_name():
    # A PNG named .jpg is still a PNG: accepted. Sniffing reads magic bytes only.
    assert load_upload(encoded("PNG"), filename="photo.jpg").size == (40, 30)
    assert sniff_type(encoded("WEBP")[:12]) == "webp"


def test_oversize_refused_before_reading():
    with pytest.raises(UploadRefused, match=r"big\.jpg: 20\.0 MB is over the 20 MB limit"):
        load_upload(io.BytesIO(b""), filename="big.jpg", size_bytes=MAX_UPLOAD_BYTES + 1)


def test_oversize_stream_refused():
    data = encoded("PNG") + b"\0" * 200
    with pytest.raises(UploadRefused, match="larger than"):
        load_upload(io.BytesIO(data), filename="x.png", max_bytes=len(data) - 1)


def test_wrong_type_refused():
    with pytest.raises(UploadRefused, match=r"anim\.gif: not a JPEG, PNG or WebP file"):
        load_upload(encoded("GIF", mode="P"), filename="anim.gif")


def test_renamed_non_image_refused():
    with pytest.raises(UploadRefused, match=r"notes\.jpg: not a JPEG, PNG or WebP file"):
        load_upload(b"just some text, not a picture\n" * 10, filename="notes.jpg")


def test_truncated_image_refused():
    data = encoded("JPEG", size=(200, 200))
    with pytest.raises(UploadRefused, match=r"cut\.jpg: .*(truncated|corrupt|broken)"):
        load_upload(data[: len(data) // 2], filename="cut.jpg")


def test_decompression_bomb_refused_from_its_header():
    data = png_bomb(10_000, 5_000)  # 50 megapixels claimed, a few hundred bytes on disk
    assert len(data) < 5_000
    with pytest.raises(UploadRefused, match=r"bomb\.png: .*50\.0 megapixels"):
        load_upload(data, filename="bomb.png")


def test_empty_file_refused():
    with pytest.raises(UploadRefused, match="empty"):
        load_upload(b"", filename="zero.png")


def test_web_modules_do_not_import_torch():
    """The explain page, API and upload checks load in the web process without torch."""
    import subprocess
    import sys

    code = (
        "import os, sys; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'config.settings');"
        "import django; django.setup();"
        "import annotate.explain.urls, annotate.explain.uploads, dissect.tasks;"
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
