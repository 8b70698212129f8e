"""The demo world generator: determinism, label maps that match the pixels, the Broden-like files."""

import csv
import filecmp
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.concepts import CATEGORY_SLUGS
from dissect.demo.world import (
    INDEX_COLUMNS,
    LABELS,
    MAP_NAMES,
    OBJECT_NAMES,
    SCENES,
    label_number,
    read_demo_world,
    render,
    render_arrays,
    write_demo_world,
)
from dissect.demo.world.render import _Canvas, draw_object, sample_rng
from dissect.demo.world.vocabulary import OBJECTS, PALETTE, REGIONS, scenes_of_object


def test_vocabulary_covers_the_papers_setting():
    assert len(SCENES) >= 10
    assert len(OBJECT_NAMES) >= 20
    for name in OBJECT_NAMES:
        assert len(scenes_of_object(name)) >= 2, name
    categories = {label.category for label in LABELS if label.number}
    assert categories == set(CATEGORY_SLUGS)
    numbers = [label.number for label in LABELS]
    assert numbers == list(range(len(LABELS))) and len(LABELS) < 256  # fits 8-bit PNGs


@pytest.mark.parametrize("variant", ["scenes", "objects"])
def test_same_seed_same_pixels_other_seed_other_pixels(variant):
    a = render(3, 11, variant=variant)
    b = render(3, 11, variant=variant)
    for field in ("image", *MAP_NAMES):
        assert np.array_equal(getattr(a, field), getattr(b, field))
    c = render(4, 11, variant=variant)
    assert not np.array_equal(a.image, c.image)


def test_written_world_is_byte_identical_for_the_same_seed(tmp_path):
    first = write_demo_world(tmp_path / "a", n_images=6, seed=9)
    second = write_demo_world(tmp_path / "b", n_images=6, seed=9)
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert len(files) == 6 * 5 + 3
    _, mismatch, errors = filecmp.cmpfiles(first, second, [str(f) for f in files], shallow=False)
    assert mismatch == [] and errors == []


def test_objects_are_drawn_exactly_where_their_labels_are():
    """On a black canvas, a drawn object changes exactly the pixels its object label covers."""
    for i, name in enumerate(OBJECT_NAMES):
        canvas = _Canvas(96, sample_rng(0, i, "objects"))
        canvas.image += 0.0  # black
        draw_object(canvas, name, 10, 8, 70, 70)
        drawn = np.abs(canvas.image).sum(axis=2) > 0
        labeled = canvas.object == label_number("object", name)
        assert labeled.sum() > 100, name
        # Jittered colors may be black-ish but never exactly 0 in all channels.
        assert np.array_equal(drawn, labeled), name
        # Parts lie inside their object.
        assert not (canvas.part > 0)[~labeled].any(), name
        spec_parts = {p.part for p in OBJECTS[name].prims if p.part}
        part_names = {LABELS[n].name for n in np.unique(canvas.part) if n}
        assert part_names <= spec_parts, name


def test_color_labels_match_the_rendered_colors():
    """Averaged over many scenes, pixels labeled with a color look most like that color."""
    sums, counts = {}, {}
    for i in range(120):
        sample = render(5, i)
        plain = sample.material == 0  # textured pixels mix two colors
        for number in np.unique(sample.color):
            sel = (sample.color == number) & plain
            sums[number] = sums.get(number, 0) + sample.image[sel].astype(np.float64).sum(axis=0)
            counts[number] = counts.get(number, 0) + int(sel.sum())
    names = list(PALETTE)
    palette = np.array(list(PALETTE.values()), dtype=np.float64)
    for number, total in sums.items():
        mean = total / counts[number]
        nearest = names[int(np.argmin(((palette - mean) ** 2).sum(axis=1)))]
        assert nearest == LABELS[number].name


def test_every_category_and_label_occurs():
    present: set[int] = set()
    for i in range(300):
        for variant in ("scenes", "objects"):
            sample = render(5, i, variant=variant)
            for map_name in MAP_NAMES:
                present.update(np.unique(getattr(sample, map_name)).tolist())
            if variant == "scenes":
                present.add(label_number("scene", sample.scene))
    missing = [label.name for label in LABELS if label.number and label.number not in present]
    assert missing == []


def test_scene_layouts_hold_their_surfaces_and_objects():
    for i in range(40):
        sample = render(8, i)
        assert SCENES[sample.class_index] == sample.scene
        regions = {
            LABELS[n].name for n in np.unique(sample.object) if LABELS[n].category == "region"
        }
        assert regions and regions <= set(REGIONS)
        assert ("wall" in regions) != ("sky" in regions)  # indoor xor outdoor
        visible = {
            LABELS[n].name for n in np.unique(sample.object) if LABELS[n].category == "object"
        }
        assert visible <= set(sample.objects)


def test_object_variant_is_one_centered_object():
    for i in range(30):
        sample = render(2, i, variant="objects")
        name = OBJECT_NAMES[sample.class_index]
        assert sample.objects == [name]
        ys, xs = np.nonzero(sample.object == label_number("object", name))
        assert len(ys) >= 0.02 * 128 * 128  # thin objects (bicycle, fence) fill less of their box
        assert abs(ys.mean() - 64) < 24 and abs(xs.mean() - 64) < 24


def test_object_scales_span_small_to_large():
    fractions = []
    for i in range(150):
        sample = render(1, i)
        for name in set(sample.objects):
            fractions.append((sample.object == label_number("object", name)).mean())
    assert min(fractions) < 0.03 and max(fractions) > 0.3


@pytest.mark.parametrize("size", [64, 200])
def test_any_size_on_request(size):
    sample = render(0, 0, size=size)
    assert sample.image.shape == (size, size, 3)
    assert all(getattr(sample, m).shape == (size, size) for m in MAP_NAMES)


def test_render_arrays_stacks_images_and_classes():
    images, classes = render_arrays(0, 5, 3, variant="objects")
    assert images.shape == (3, 128, 128, 3) and images.dtype == np.uint8
    assert classes.tolist() == [render(0, 5 + i, variant="objects").class_index for i in range(3)]


def test_broden_like_index_is_readable_by_plain_csv(tmp_path):
    root = write_demo_world(tmp_path / "w", n_images=10, seed=4)
    with open(root / "index.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert tuple(rows[0]) == INDEX_COLUMNS and len(rows) == 10
    assert {r["split"] for r in rows} == {"train", "val"}
    with open(root / "labels.csv", newline="") as fh:
        labels = list(csv.DictReader(fh))
    by_number = {int(r["number"]): r for r in labels}
    assert {r["category"] for r in labels if r["number"] != "0"} == set(CATEGORY_SLUGS)
    for i, row in enumerate(rows):
        sample = render(4, i)
        assert row["class"] == sample.scene
        assert by_number[int(row["scene"])]["name"] == sample.scene
        with Image.open(root / "images" / row["image"]) as im:
            assert im.format == "JPEG" and im.size == (int(row["iw"]), int(row["ih"]))
            # JPEG is lossy; it stays close to the rendered pixels.
            assert np.abs(np.asarray(im, np.int16) - sample.image).mean() < 8
        for map_name in MAP_NAMES:
            with Image.open(root / "images" / row[map_name]) as im:
                assert im.format == "PNG"
                assert np.array_equal(np.asarray(im), getattr(sample, map_name))
    world = read_demo_world(root)
    assert world.meta["seed"] == 4 and world.meta["variant"] == "scenes"
    maps = world.label_maps(world.rows[0])
    assert set(maps) == set(MAP_NAMES)
    assert world.image(world.rows[0]).shape == (128, 128, 3)


def test_objects_variant_index_names_the_object(tmp_path):
    root = write_demo_world(tmp_path / "o", n_images=4, seed=1, variant="objects")
    world = read_demo_world(root)
    assert [r["class"] for r in world.rows] == [
        OBJECT_NAMES[render(1, i, variant="objects").class_index] for i in range(4)
    ]
    assert all(r["scene"] == "" for r in world.rows)


def test_bad_arguments_and_missing_directory(tmp_path):
    with pytest.raises(ValueError, match="variant"):
        write_demo_world(tmp_path, n_images=1, seed=0, variant="faces")
    with pytest.raises(FileNotFoundError, match="make_demo_world"):
        read_demo_world(Path(tmp_path) / "nothing")
