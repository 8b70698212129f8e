"""Broden-like files of the demo world: write them, read them back.

Layout of ``out_dir`` (paths in index.csv are relative to ``images/``, as in Broden)::

    images/000000.jpg            the image (JPEG)
    images/000000_object.png     label numbers of objects and regions (8-bit PNG, 0 = none)
    images/000000_part.png       label numbers of object parts
    images/000000_material.png   label numbers of textures and materials
    images/000000_color.png      label numbers of colors
    index.csv                    image,split,ih,iw,sh,sw,class,scene,object,part,material,color
    labels.csv                   number,name,category,frequency,coverage
    world.json                   seed, size, variant, n_images, generator version

Label numbers are global across categories; ``labels.csv`` names each one's category with the slugs
scene, object, region, part, material, color. The ``scene`` column of index.csv holds the scene's
label number (scenes variant); ``class`` holds the name a demo network is trained to predict.
"""

import csv
import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from dissect.demo.world.render import VARIANTS, render
from dissect.demo.world.vocabulary import GENERATOR_VERSION, LABELS, Label, label_number

MAP_NAMES: tuple[str, ...] = ("object", "part", "material", "color")
INDEX_COLUMNS: tuple[str, ...] = (
    "image",
    "split",
    "ih",
    "iw",
    "sh",
    "sw",
    "class",
    "scene",
) + MAP_NAMES
VAL_EVERY = 5  # every fifth image is in the "val" split


def split_of(index: int) -> str:
    """The split of image ``index``: "val" for every fifth image, "train" otherwise."""
    return "val" if index % VAL_EVERY == VAL_EVERY - 1 else "train"


def write_demo_world(
    out_dir: str | Path,
    *,
    n_images: int,
    seed: int,
    size: int = 128,
    variant: str = "scenes",
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Render ``n_images`` images of ``variant`` and write them in the Broden-like layout.

    Returns the output directory. Same arguments, same bytes. ``progress(done, total)`` is called as
    images are written.
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown demo world variant {variant!r}; use one of {VARIANTS}")
    if n_images < 1 or size < 16:
        raise ValueError("n_images must be >= 1 and size >= 16")
    out = Path(out_dir)
    images_dir = out / "images"
    images_dir.mkdir(parents=True, exist_ok=True)
    frequency = np.zeros(len(LABELS), np.int64)
    pixels = np.zeros(len(LABELS), np.int64)
    rows = []
    for index in range(n_images):
        sample = render(seed, index, size=size, variant=variant)
        stem = f"{index:06d}"
        row = {
            "image": f"{stem}.jpg",
            "split": split_of(index),
            "ih": size,
            "iw": size,
            "sh": size,
            "sw": size,
            "class": _class_name(sample, variant),
            "scene": label_number("scene", sample.scene) if variant == "scenes" else "",
        }
        row.update({map_name: f"{stem}_{map_name}.png" for map_name in MAP_NAMES})
        for suffix, data in encode_sample(sample).items():
            (images_dir / f"{stem}{suffix}").write_bytes(data)
        for map_name in MAP_NAMES:
            counts = np.bincount(getattr(sample, map_name).ravel(), minlength=len(LABELS))
            frequency += counts > 0
            pixels += counts
        if variant == "scenes":
            frequency[row["scene"]] += 1
        rows.append(row)
        if progress is not None:
            progress(index + 1, n_images)
    with open(out / "index.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=INDEX_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    frequency[0] = 0  # "no label" is not a label
    with open(out / "labels.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["number", "name", "category", "frequency", "coverage"])
        for label in LABELS:
            present = int(frequency[label.number])
            coverage = pixels[label.number] / (present * size * size) if present else 0.0
            writer.writerow([label.number, label.name, label.category, present, f"{coverage:.4f}"])
    meta = {
        "generator_version": GENERATOR_VERSION,
        "seed": seed,
        "size": size,
        "variant": variant,
        "n_images": n_images,
    }
    (out / "world.json").write_text(json.dumps(meta, indent=2) + "\n")
    return out


def encode_sample(sample) -> dict[str, bytes]:
    """The files of one rendered sample, by file-name suffix: ".jpg" (JPEG, quality 95, no chroma
    subsampling) and "_object.png", "_part.png", "_material.png", "_color.png" (8-bit label maps)."""
    files = {}
    buffer = io.BytesIO()
    Image.fromarray(sample.image).save(buffer, format="JPEG", quality=95, subsampling=0)
    files[".jpg"] = buffer.getvalue()
    for map_name in MAP_NAMES:
        buffer = io.BytesIO()
        Image.fromarray(getattr(sample, map_name)).save(buffer, format="PNG", compress_level=1)
        files[f"_{map_name}.png"] = buffer.getvalue()
    return files


def _class_name(sample, variant: str) -> str:
    return sample.scene if variant == "scenes" else sample.objects[0]


@dataclass
class DemoWorldFiles:
    """A Broden-like directory read back: its index rows and label table."""

    root: Path
    rows: list[dict[str, str]]
    labels: list[Label]
    meta: dict

    def image_path(self, row: dict[str, str]) -> Path:
        return self.root / "images" / row["image"]

    def image(self, row: dict[str, str]) -> np.ndarray:
        """The image of ``row`` as (H, W, 3) uint8."""
        with Image.open(self.image_path(row)) as im:
            return np.asarray(im.convert("RGB"))

    def label_maps(self, row: dict[str, str]) -> dict[str, np.ndarray]:
        """The label maps of ``row``: {"object"|"part"|"material"|"color": (H, W) uint8 label numbers}."""
        maps = {}
        for map_name in MAP_NAMES:
            with Image.open(self.root / "images" / row[map_name]) as im:
                maps[map_name] = np.asarray(im)
        return maps


def read_demo_world(root: str | Path) -> DemoWorldFiles:
    """Read index.csv, labels.csv and world.json of a directory written by ``write_demo_world``."""
    root = Path(root)
    for name in ("index.csv", "labels.csv"):
        if not (root / name).is_file():
            raise FileNotFoundError(
                f"{root / name} is missing: not a demo world directory "
                "(create one with `python manage.py make_demo_world OUT_DIR`)"
            )
    with open(root / "index.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    with open(root / "labels.csv", newline="") as fh:
        labels = [Label(int(r["number"]), r["name"], r["category"]) for r in csv.DictReader(fh)]
    meta_path = root / "world.json"
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    return DemoWorldFiles(root, rows, labels, meta)
