"""Issue 12, point 6: image folders with symbolic-link loops, links out of the folder, dangling
links, named pipes and paths too long to keep. The scan finishes, keeps the good files, and lists
every refused entry as bad with its reason; nothing outside the folder is read."""

import os

import pytest
from PIL import Image as PILImage

from dissect.images import PATH_MAX_CHARS
from dissect.models import Image
from dissect.services import image_set_scan

pytestmark = pytest.mark.django_db


def _png(path, shade=10):
    path.parent.mkdir(parents=True, exist_ok=True)
    PILImage.new("RGB", (8, 8), (shade, shade, shade)).save(path, "PNG")
    return path


@pytest.fixture
def hostile(tmp_path):
    root = tmp_path / "images"
    outside = tmp_path / "secret"
    _png(root / "good.png")
    _png(root / "sub" / "nested.png", 30)
    _png(outside / "private.png", 99)
    os.symlink("loop.jpg", root / "loop.jpg")  # points at itself
    os.symlink("..", root / "sub" / "up")  # a folder linking back to the root
    os.symlink(outside / "private.png", root / "escape.png")  # out of the folder
    os.symlink(outside, root / "elsewhere")  # a folder out of the folder
    os.symlink("missing.png", root / "gone.png")  # dangling
    os.symlink("good.png", root / "alias.png")  # inside the folder: fine
    os.mkfifo(root / "pipe.jpg")  # opening it would block forever
    long_rel = "/".join(["d" * 200, "e" * 200, "f" * 120 + ".png"])
    _png(root / long_rel)
    assert len(long_rel) > PATH_MAX_CHARS
    return root, long_rel


def _rows(image_set):
    return {i.path: i for i in Image.objects.filter(image_set=image_set)}


def test_hostile_folder_scans_with_every_refusal_named(hostile):
    root, long_rel = hostile
    image_set = image_set_scan(name="hostile", root=root)
    rows = _rows(image_set)
    ok = {p for p, i in rows.items() if i.status == "ok"}
    assert ok == {"good.png", "sub/nested.png", "alias.png"}
    bad = {p: i.reason for p, i in rows.items() if i.status == "bad"}
    assert "symbolic link loop" in bad["loop.jpg"]
    assert "symbolic link loop" in bad["sub/up"] and "not followed" in bad["sub/up"]
    assert "outside the image folder" in bad["escape.png"]
    assert rows["escape.png"].sha1 == "" and rows["escape.png"].size_bytes == 0  # never read
    assert "outside the image folder" in bad["elsewhere"]
    assert "dangling symbolic link" in bad["gone.png"]
    assert "named pipe" in bad["pipe.jpg"]
    (long_row,) = [i for p, i in rows.items() if p.startswith("d" * 200)]
    assert long_row.status == "bad" and "too long" in long_row.path
    assert f"{len(long_rel)} characters" in long_row.reason
    assert len(long_row.path) <= PATH_MAX_CHARS
    # No reason leaks the absolute root; every bad row has one.
    assert all(reason and str(root) + "/" not in reason for reason in bad.values())
    assert image_set.image_count == 3 and image_set.bad_count == len(bad)


def test_rescanning_a_hostile_folder_is_stable(hostile):
    root, _ = hostile
    first = _rows(image_set_scan(name="again", root=root))
    second = _rows(image_set_scan(name="again", root=root))
    assert {p: (i.pk, i.status, i.reason) for p, i in first.items()} == {
        p: (i.pk, i.status, i.reason) for p, i in second.items()
    }


def test_a_manifest_cannot_reach_out_of_the_folder(hostile, tmp_path):
    root, _ = hostile
    manifest = tmp_path / "list.csv"
    manifest.write_text("path\ngood.png\nescape.png\npipe.jpg\nloop.jpg\nnope.png\n")
    rows = _rows(image_set_scan(name="listed", root=root, manifest=manifest))
    assert rows["good.png"].status == "ok"
    assert "outside the image folder" in rows["escape.png"].reason
    assert "line 3" in rows["escape.png"].reason
    assert "named pipe" in rows["pipe.jpg"].reason
    assert "symbolic link loop" in rows["loop.jpg"].reason
    assert "no such file" in rows["nope.png"].reason
