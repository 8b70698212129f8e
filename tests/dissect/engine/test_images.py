"""Image checks and decoding on real files: bad ones get a human reason, odd ones decode right."""

import io

import numpy as np
import pytest
import torch
from PIL import Image

from dissect.images import (
    BadImageError,
    FailedImage,
    ManifestError,
    inspect_image,
    iter_image_batches,
    load_rgb,
    network_view,
    read_manifest_csv,
    scan_folder,
)
from dissect.networks import default_preprocessing


def save(img, path, **kwargs):
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, **kwargs)
    return path


def rgb(w=40, h=30, color=(200, 30, 60)):
    return Image.new("RGB", (w, h), color)


def test_good_image_is_ok_with_size_and_sha1(tmp_path):
    path = save(rgb(), tmp_path / "a.jpg")
    check = inspect_image(path)
    assert check.ok and check.reason == ""
    assert (check.width, check.height) == (40, 30)
    assert len(check.sha1) == 40 and check.size_bytes == path.stat().st_size


def test_zero_byte_file(tmp_path):
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    check = inspect_image(path)
    assert not check.ok and "empty" in check.reason and "empty.jpg" in check.reason
    with pytest.raises(BadImageError, match="empty"):
        load_rgb(path)


def test_truncated_jpeg(tmp_path):
    buffer = io.BytesIO()
    noise = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(noise).save(buffer, "JPEG")
    path = tmp_path / "cut.jpg"
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    check = inspect_image(path)
    assert not check.ok and "truncated" in check.reason
    with pytest.raises(BadImageError, match="truncated"):
        load_rgb(path)


def test_text_file_renamed_jpg(tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("this is not a picture\n")
    check = inspect_image(path)
    assert not check.ok and "not an image" in check.reason


def test_decompression_bomb_is_refused_before_decoding(tmp_path):
    path = save(Image.new("1", (8000, 6000)), tmp_path / "bomb.png")  # 48 MP, tiny file
    assert path.stat().st_size < 200_000
    check = inspect_image(path)
    assert not check.ok and "megapixel" in check.reason
    with pytest.raises(BadImageError, match="over the 40 megapixel limit"):
        load_rgb(path)
    small = save(rgb(200, 200), tmp_path / "small.png")
    assert not inspect_image(small, max_pixels=10_000).ok  # the limit is configurable


def test_cmyk_grayscale_and_alpha_become_rgb(tmp_path):
    cmyk = save(Image.new("CMYK", (20, 10), (0, 255, 255, 0)), tmp_path / "cmyk.jpg")
    img = load_rgb(cmyk)
    assert img.mode == "RGB" and img.size == (20, 10)
    r, g, b = img.getpixel((5, 5))
    assert r > 200 and g < 60 and b < 60  # CMYK (0, 255, 255, 0) is red

    gray = save(Image.new("L", (12, 8), 77), tmp_path / "gray.png")
    assert load_rgb(gray).getpixel((3, 3)) == (77, 77, 77)

    rgba = Image.new("RGBA", (10, 10), (0, 0, 255, 255))
    rgba.putpixel((0, 0), (0, 0, 0, 0))  # fully transparent -> white background
    img = load_rgb(save(rgba, tmp_path / "alpha.png"))
    assert img.getpixel((0, 0)) == (255, 255, 255) and img.getpixel((5, 5)) == (0, 0, 255)

    palette = save(rgb().convert("P"), tmp_path / "pal.png")
    assert load_rgb(palette).mode == "RGB"

    deep = save(Image.fromarray(np.full((6, 6), 51400, dtype=np.uint16)), tmp_path / "g16.png")
    assert load_rgb(deep).getpixel((2, 2)) == (200, 200, 200)  # 16-bit gray scaled to 8 bits


def test_exif_orientation_is_applied(tmp_path):
    img = Image.new("RGB", (60, 20), (0, 0, 0))
    img.paste((255, 255, 255), (0, 0, 10, 20))  # white stripe at the left edge
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: display rotated 90 degrees clockwise
    path = save(img, tmp_path / "rotated.jpg", exif=exif.tobytes(), quality=95)
    upright = load_rgb(path)
    assert upright.size == (20, 60)
    assert upright.getpixel((10, 3))[0] > 200  # the stripe is now at the top
    assert upright.getpixel((10, 50))[0] < 50
    check = inspect_image(path)
    assert (check.width, check.height) == (20, 60)


def test_scan_folder_is_recursive_sorted_and_reports_bad_files(tmp_path):
    save(rgb(), tmp_path / "b" / "z.png")
    save(rgb(), tmp_path / "a.JPG")
    save(rgb(), tmp_path / "b" / "a.webp")
    save(rgb(), tmp_path / "b.bmp")
    save(rgb(), tmp_path / "c" / "d" / "e.jpeg")
    (tmp_path / "readme.txt").write_text("skip me")
    (tmp_path / "c" / "broken.png").write_bytes(b"")
    calls = []
    records = list(scan_folder(tmp_path, progress=lambda done, total: calls.append((done, total))))
    assert [r.relpath for r in records] == [
        "a.JPG", "b.bmp", "b/a.webp", "b/z.png", "c/broken.png", "c/d/e.jpeg",
    ]  # fmt: skip
    assert [r.check.ok for r in records] == [True, True, True, True, False, True]
    assert calls[-1] == (6, 6)


def test_scan_folder_streams(tmp_path):
    for i in range(30):
        save(rgb(8, 8), tmp_path / f"d{i % 3}" / f"{i:03d}.png")
    records = scan_folder(tmp_path)
    first = next(records)  # a generator: nothing forces the whole tree into memory
    assert first.relpath == "d0/000.png"
    assert sum(1 for _ in records) == 29


def test_manifest_rows_and_errors(tmp_path):
    good = tmp_path / "m.csv"
    good.write_text("path,label\nimgs/a.jpg,cat\nimgs/b.jpg,\n")
    rows = list(read_manifest_csv(good))
    assert [(r.line, r.path, r.extra) for r in rows] == [
        (2, "imgs/a.jpg", {"label": "cat"}),
        (3, "imgs/b.jpg", {"label": ""}),
    ]
    cases = {
        "file,label\na.jpg,x\n": "line 1: the header needs a 'path' column",
        "path\na.jpg\n\nb.jpg\na.jpg\n": "line 5: 'a.jpg' is listed twice",
        "path\n/etc/passwd\n": "line 2: '/etc/passwd' must be relative",
        "path\n../up.jpg\n": "line 2",
        "path,label\n,cat\n": "line 2: the 'path' value is empty",
        "path\na.jpg,extra\n": "line 2: more values than header columns",
    }
    for text, message in cases.items():
        bad = tmp_path / "bad.csv"
        bad.write_text(text)
        with pytest.raises(ManifestError, match=message.replace("(", r"\(")):
            list(read_manifest_csv(bad))


def test_network_view_is_the_center_crop():
    img = Image.new("RGB", (200, 100), (0, 0, 0))
    img.paste((255, 0, 0), (90, 0, 110, 100))  # a red bar in the middle
    view = network_view(img, default_preprocessing(64))
    assert view.size == (64, 64)
    assert view.getpixel((32, 32))[0] > 200 and view.getpixel((2, 32))[0] < 30


@pytest.mark.parametrize("workers", [0, 2])
def test_batches_skip_files_that_fail_to_decode(tmp_path, workers):
    items = []
    for i in range(7):
        path = tmp_path / f"{i}.png"
        if i == 3:
            path.write_text("not an image")
        else:
            save(rgb(50, 40, (i * 30, 0, 0)), path)
        items.append((100 + i, path))
    failures: list[FailedImage] = []
    batches = list(
        iter_image_batches(
            items, default_preprocessing(32), batch_size=3, workers=workers,
            on_failure=failures.append,
        )
    )  # fmt: skip
    ids = torch.cat([b[0] for b in batches]).tolist()
    assert ids == [100, 101, 102, 104, 105, 106]
    assert all(b[1].shape[1:] == (3, 32, 32) for b in batches)
    assert [f.image_id for f in failures] == [103]
    assert "not an image" in failures[0].reason


@pytest.mark.parametrize("workers", [0, 2])
def test_view_batches_are_the_network_views_of_the_tensors(tmp_path, workers):
    # Rendering from stored maps cuts tiles from these views; a re-run of the network cuts them
    # from the un-normalized tensors: both must give the same pixels.
    items = []
    for i in range(5):
        path = tmp_path / f"{i}.png"
        if i == 2:
            path.write_text("not an image")
        else:
            save(rgb(50 + 7 * i, 40, (i * 50, 90, 200 - i * 30)), path)
        items.append((10 + i, path))
    pre = default_preprocessing(32)
    failures: list[FailedImage] = []
    views = list(
        iter_image_batches(
            items, pre, batch_size=2, workers=workers, on_failure=failures.append, views=True
        )
    )
    ids = [i for batch_ids, _ in views for i in batch_ids]
    assert ids == [10, 11, 13, 14] and [f.image_id for f in failures] == [12]
    tensors = torch.cat([b[1] for b in iter_image_batches(items, pre, batch_size=2)])
    mean, std = torch.tensor(pre["mean"]).view(3, 1, 1), torch.tensor(pre["std"]).view(3, 1, 1)
    for view, x in zip([v for _, vs in views for v in vs], tensors, strict=True):
        assert view.mode == "RGB" and view.size == (32, 32)
        pixels = ((x * std + mean).clamp(0, 1) * 255 + 0.5).to(torch.uint8).permute(1, 2, 0)
        assert np.array_equal(np.asarray(view), pixels.numpy())
