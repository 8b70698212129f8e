"""Scanning image folders and CSV manifests: sizes, hashes, bad files recorded with reasons."""

import hashlib

import pytest
from PIL import Image as PILImage

from dissect.models import Image
from dissect.services import PipelineError, image_set_scan

from .conftest import write_images


def _bad_files(folder):
    good = write_images(folder, 4)
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "notes.png").write_text("this is not a picture")
    data = good[1].read_bytes()
    (folder / "cut.jpg").write_bytes(data[: len(data) // 2])
    # 7000 x 7000 1-bit: a few kB on disk, 49 megapixels decoded (over the 40 MP guard).
    PILImage.new("1", (7000, 7000)).save(folder / "bomb.png")
    (folder / "readme.txt").write_text("ignored: not an image extension")
    return good


@pytest.mark.django_db
def test_scan_records_ok_and_bad_files_with_reasons(tmp_path):
    folder = tmp_path / "set"
    good = _bad_files(folder)
    seen = []
    image_set = image_set_scan(name="mixed", root=folder, progress=lambda d, t: seen.append((d, t)),
                               chunk_size=3)  # fmt: skip

    assert image_set.image_count == 4 and image_set.bad_count == 4
    assert seen[-1] == (8, 8) and len(seen) >= 3  # chunks of 3
    reasons = dict(image_set.images.filter(status=Image.Status.BAD).values_list("path", "reason"))
    assert set(reasons) == {"empty.jpg", "notes.png", "cut.jpg", "bomb.png"}
    assert "empty" in reasons["empty.jpg"]
    assert "not an image" in reasons["notes.png"]
    assert "truncated" in reasons["cut.jpg"] or "corrupt" in reasons["cut.jpg"]
    assert "megapixel" in reasons["bomb.png"]
    row = image_set.images.get(path=good[0].relative_to(folder).as_posix())
    assert row.sha1 == hashlib.sha1(good[0].read_bytes()).hexdigest()
    assert (row.width, row.height, row.size_bytes) == (48, 48, good[0].stat().st_size)

    lines = sorted(
        f"{p.relative_to(folder).as_posix()}\t{hashlib.sha1(p.read_bytes()).hexdigest()}\n"
        for p in good
    )
    assert image_set.manifest_sha256 == hashlib.sha256("".join(lines).encode()).hexdigest()


@pytest.mark.django_db
def test_rescan_updates_rows_in_place(tmp_path):
    folder = tmp_path / "set"
    paths = write_images(folder, 3)
    first = image_set_scan(name="again", root=folder)
    ids = set(first.images.values_list("id", flat=True))
    paths[0].unlink()
    paths[1].write_bytes(b"")  # broken since the first scan
    second = image_set_scan(name="again", root=folder)
    assert second.pk == first.pk and (second.image_count, second.bad_count) == (1, 1)
    assert set(second.images.values_list("id", flat=True)) < ids
    changed = second.images.get(path=paths[1].relative_to(folder).as_posix())
    assert changed.status == Image.Status.BAD and changed.size_bytes == 0


@pytest.mark.django_db
def test_manifest_lists_files_and_reports_missing_ones(tmp_path):
    folder = tmp_path / "set"
    paths = write_images(folder, 3)
    manifest = tmp_path / "list.csv"
    rel = [p.relative_to(folder).as_posix() for p in paths]
    manifest.write_text(
        f"path,label,split\n{rel[0]},beach,train\n{rel[1]},forest,val\ngone.jpg,x,train\n"
    )
    image_set = image_set_scan(name="listed", root=folder, manifest=manifest)
    assert image_set.image_count == 2 and image_set.bad_count == 1
    assert image_set.images.get(path=rel[0]).scene_label == "beach"
    assert "line 4" in image_set.images.get(path="gone.jpg").reason


@pytest.mark.django_db
def test_scan_of_missing_folder_says_so(tmp_path):
    with pytest.raises(PipelineError, match="no such folder"):
        image_set_scan(name="nothing", root=tmp_path / "absent")
