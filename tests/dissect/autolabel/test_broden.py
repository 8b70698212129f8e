"""The Broden-layout reader and importer: a small well-formed dataset, and malformed ones whose
errors name the file, the row and what to do."""

import csv

import numpy as np
import pytest
from django.core.management import CommandError, call_command
from PIL import Image

from dissect.broden import BrodenError, read_broden, read_label_map


def test_well_formed_dataset_reads(color_world):
    dataset = read_broden(color_world)
    assert len(dataset.rows) == 24
    assert dataset.label_columns == ["object", "scene"]
    assert dataset.labels[1].name == "red box"
    assert dataset.labels[1].category == "object"  # object(24);part(1): the larger count wins
    assert dataset.labels[4].category == "scene"
    assert 0 not in dataset.labels and dataset.n_labels == 7
    row = dataset.rows[0]
    assert row.map_files == ("000_object.png",) and len(row.image_labels) == 1


def test_rgb_and_gray_label_maps_decode(tmp_path):
    labels = np.array([[0, 1, 300], [255, 256, 1000]])
    rgb = np.stack([labels % 256, labels // 256, np.zeros_like(labels)], -1).astype(np.uint8)
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    Image.fromarray((labels % 200).astype(np.uint8)).save(tmp_path / "gray.png")
    assert (read_label_map(tmp_path / "rgb.png") == labels).all()
    assert (read_label_map(tmp_path / "gray.png") == labels % 200).all()
    assert read_label_map(tmp_path / "rgb.png").dtype == np.int64  # the default, for any caller
    # dtype=None keeps the smallest type: the one-pass loader ships them to the main process.
    gray = read_label_map(tmp_path / "gray.png", dtype=None)
    assert gray.dtype == np.uint8 and (gray == labels % 200).all()
    assert (read_label_map(tmp_path / "rgb.png", dtype=None) == labels).all()


def rewrite(path, edit):
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    edit(rows)
    with open(path, "w", newline="") as fh:
        csv.writer(fh).writerows(rows)


@pytest.mark.parametrize(
    "breakage, message",
    [
        (lambda root: (root / "index.csv").unlink(), r"index\.csv is missing"),
        (lambda root: (root / "label.csv").unlink(), r"no label table.*label\.csv"),
        (
            lambda root: rewrite(root / "label.csv", lambda rows: rows[0].__setitem__(2, "kind")),
            r"label\.csv: missing column\(s\) category",
        ),
        (
            lambda root: rewrite(root / "label.csv", lambda rows: rows[2].__setitem__(0, "x")),
            r"label\.csv line 3: number 'x' is not an integer",
        ),
        (
            lambda root: rewrite(root / "index.csv", lambda rows: rows[3].__setitem__(7, "99")),
            r"index\.csv line 4, column 'scene': label number 99 is not in the label table",
        ),
        (
            lambda root: rewrite(root / "index.csv", lambda rows: rows[2].__setitem__(6, "abc")),
            r"index\.csv line 3, column 'object': 'abc' is neither a \.png label map",
        ),
        (
            lambda root: rewrite(root / "index.csv", lambda rows: rows[0].__setitem__(0, "file")),
            r"index\.csv: no 'image' column",
        ),
        (
            lambda root: (root / "images" / "005_object.png").unlink(),
            r"1 file\(s\) named in index\.csv are missing \(line 7: 005_object\.png\)",
        ),
    ],
)
def test_malformed_layouts_are_refused_clearly(color_world, breakage, message):
    breakage(color_world)
    with pytest.raises(BrodenError, match=message):
        read_broden(color_world)


def test_import_command(color_world, db, tmp_path, settings):
    settings.DATA_DIR = tmp_path / "data"
    call_command("import_broden", str(color_world), "--name", "colors", verbosity=0)
    from dissect.models import ImageSet

    image_set = ImageSet.objects.get(name="colors")
    assert image_set.image_count == 24 and image_set.labels_dir == str(color_world.resolve())
    (color_world / "index.csv").unlink()
    with pytest.raises(CommandError, match=r"index\.csv is missing"):
        call_command("import_broden", str(color_world), "--name", "broken", verbosity=0)


def _replace_map(world, name: str, array: np.ndarray, fmt: str = "PNG") -> None:
    Image.fromarray(array).save(world / "images" / name, format=fmt)


def _encoded(labels: np.ndarray) -> np.ndarray:
    rgb = np.zeros((*labels.shape, 3), np.uint8)
    rgb[..., 0], rgb[..., 1] = labels % 256, labels // 256
    return rgb


@pytest.mark.parametrize(
    "breakage, message",
    [
        # Issue 12: a 2x2 map for 32x32 images was accepted and changed the automatic labels.
        (lambda w: _replace_map(w, "003_object.png", _encoded(np.ones((2, 2), np.int64))),
         r"003_object\.png \(index line 5\): is 2x2 pixels; the index declares 32x32"),
        # Label numbers missing from the label table (the table has 0-6).
        (lambda w: _replace_map(w, "001_object.png", _encoded(np.full((32, 32), 99, np.int64))),
         r"001_object\.png .*label number\(s\) 99 missing from the label table"),
        # A label map that is not a PNG (a JPEG under a .png name).
        (lambda w: _replace_map(w, "002_object.png", _encoded(np.ones((32, 32), np.int64)), "JPEG"),
         r"002_object\.png .*is a JPEG file, not a PNG"),
    ],
)  # fmt: skip
def test_import_checks_every_label_map_by_file(
    color_world, db, tmp_path, settings, breakage, message
):
    from dissect.services import import_broden

    settings.DATA_DIR = tmp_path / "data"
    breakage(color_world)
    with pytest.raises(BrodenError, match=message):
        import_broden(root=color_world, name="colors")
    from dissect.models import ImageSet

    assert not ImageSet.objects.filter(name="colors").exists()  # nothing half-imported


def test_extra_values_in_index_rows_are_refused(color_world):
    index = color_world / "index.csv"
    lines = index.read_text().splitlines()
    lines[3] += ",surplus"
    index.write_text("\n".join(lines) + "\n")
    with pytest.raises(BrodenError, match=r"line 4: 1 value\(s\) beyond the 8 columns"):
        read_broden(color_world)
