"""Reader for segmentation datasets in the Broden layout (Bau et al., Network Dissection).

Layout of a dataset folder (the demo world written by ``dissect.demo.world`` is one instance)::

    index.csv     image,split,ih,iw,sh,sw,<category columns...>
    label.csv     number,name,category[,frequency,coverage,syns]   (or labels.csv, the demo's name)
    images/       the images and the PNG label maps index.csv names

A category column cell holds ``;``-separated values: PNG file names (pixel label maps, relative to
``images/``) or integer label numbers (whole-image labels, as Broden's ``scene`` and ``texture``).
Label numbers are global across categories; 0 means "no label". A label map PNG holds the label
number per pixel: 8-bit/16-bit gray directly, RGB as ``R + 256 * G`` (Broden's encoding).

Nothing here imports Django or torch: the importer and the automatic-label stage build on it.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

__all__ = [
    "BrodenError",
    "BrodenDataset",
    "BrodenLabel",
    "BrodenRow",
    "CATEGORY_ALIASES",
    "read_broden",
]

LABEL_TABLE_NAMES = ("label.csv", "labels.csv")
# Columns of index.csv that are not label columns.
NON_LABEL_COLUMNS = frozenset({"image", "split", "ih", "iw", "sh", "sw", "class"})
# Broden's category names -> the paper's six category slugs (core.concepts).
CATEGORY_ALIASES = {"texture": "material", "textures": "material", "materials": "material"}
_CATEGORY_COUNT = re.compile(r"^\s*([A-Za-z_][\w-]*)\s*\((\d+)\)\s*$")


class BrodenError(ValueError):
    """The folder is not a well-formed Broden-layout dataset; the message names the file, the row
    or the column, and what to do."""


@dataclass(frozen=True)
class BrodenLabel:
    number: int
    name: str
    category: str


@dataclass(frozen=True)
class BrodenRow:
    """One image of the index: its path (relative to ``images/``), split, label-map files and
    whole-image label numbers."""

    line: int
    image: str
    split: str
    map_files: tuple[str, ...]
    image_labels: tuple[int, ...]
    # (height, width) the index declares for the label maps (columns sh, sw), when it does.
    map_size: tuple[int, int] | None = None


@dataclass
class BrodenDataset:
    """A Broden-layout dataset read and checked by ``read_broden``."""

    root: Path
    rows: list[BrodenRow]
    labels: dict[int, BrodenLabel]
    label_columns: list[str]
    categories: list[str] = field(default_factory=list)

    @property
    def images_dir(self) -> Path:
        return self.root / "images"

    @property
    def n_labels(self) -> int:
        """One more than the largest label number (label numbers index IoU columns)."""
        return max(self.labels, default=0) + 1

    def label_name(self, number: int) -> str:
        return self.labels[number].name if number in self.labels else str(number)

    def row_by_image(self) -> dict[str, BrodenRow]:
        return {row.image: row for row in self.rows}

    def read_label_maps(self, row: BrodenRow) -> list[np.ndarray]:
        """The pixel label maps of ``row`` as int64 (H, W) arrays of label numbers."""
        return [read_label_map(self.images_dir / name) for name in row.map_files]


def read_label_map(path: Path, dtype=np.int64) -> np.ndarray:
    """A label-map PNG as (H, W) label numbers (gray directly; RGB as R + 256 G), as ``dtype``;
    ``dtype=None`` keeps the smallest one that holds them (uint8 for a gray or palette PNG)."""
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode in ("RGB", "RGBA"):
                rgb = np.asarray(im.convert("RGB"), dtype=np.int32)
                values = rgb[:, :, 0] + 256 * rgb[:, :, 1]
            else:
                # A palette PNG stores label numbers as palette indexes.
                values = np.asarray(im)
            return values if dtype is None else values.astype(dtype, copy=False)
    except FileNotFoundError as exc:
        raise BrodenError(f"{path}: label map is missing; index.csv names it") from exc
    except OSError as exc:
        raise BrodenError(f"{path}: cannot read the label map PNG ({exc})") from exc


def _parse_category(raw: str, *, where: str) -> str:
    """'object' or Broden's 'color(289);object(3)' (the most frequent one wins) -> a slug."""
    parts = [p for p in (raw or "").split(";") if p.strip()]
    if not parts:
        raise BrodenError(f"{where}: the category is empty; give one (e.g. object, part, color)")
    best, best_count = "", -1
    for part in parts:
        match = _CATEGORY_COUNT.match(part)
        name, count = (match.group(1), int(match.group(2))) if match else (part.strip(), 0)
        if count > best_count:
            best, best_count = name, count
    best = best.lower()
    return CATEGORY_ALIASES.get(best, best)


def _read_label_table(root: Path) -> tuple[Path, dict[int, BrodenLabel]]:
    path = next((root / n for n in LABEL_TABLE_NAMES if (root / n).is_file()), None)
    if path is None:
        raise BrodenError(
            f"{root}: no label table; a Broden-layout dataset needs label.csv (or labels.csv) "
            "with columns number,name,category"
        )
    labels: dict[int, BrodenLabel] = {}
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = {"number", "name", "category"} - set(reader.fieldnames or [])
        if missing:
            raise BrodenError(
                f"{path}: missing column(s) {', '.join(sorted(missing))}; the header must "
                f"include number,name,category (found: {', '.join(reader.fieldnames or [])})"
            )
        for line, rec in enumerate(reader, start=2):
            where = f"{path} line {line}"
            try:
                number = int(rec["number"])
            except (TypeError, ValueError):
                raise BrodenError(f"{where}: number {rec['number']!r} is not an integer") from None
            if number < 0:
                raise BrodenError(f"{where}: number {number} is negative")
            if number == 0:
                continue  # "no label" (Broden's row 0, '-'): never a concept
            if number in labels:
                raise BrodenError(f"{where}: label number {number} appears twice")
            name = (rec["name"] or "").strip()
            if not name:
                raise BrodenError(f"{where}: label {number} has an empty name")
            labels[number] = BrodenLabel(
                number, name, _parse_category(rec["category"], where=where)
            )
    if not labels:
        raise BrodenError(f"{path}: the label table has no labels (numbers >= 1)")
    return path, labels


def _declared_size(rec: dict, *, index_path: Path, line: int) -> tuple[int, int] | None:
    """The label-map size a row declares (sh, sw), or None when the index has no such columns."""
    raw = ((rec.get("sh") or "").strip(), (rec.get("sw") or "").strip())
    if not all(raw):
        return None
    try:
        h, w = int(raw[0]), int(raw[1])
    except ValueError:
        raise BrodenError(
            f"{index_path} line {line}: sh/sw {raw[0]!r}/{raw[1]!r} are not whole numbers"
        ) from None
    if h <= 0 or w <= 0:
        raise BrodenError(f"{index_path} line {line}: sh/sw must be positive, not {h}/{w}")
    return h, w


MAX_MAP_ERRORS_SHOWN = 10


def check_label_maps(dataset: BrodenDataset, *, progress=None) -> None:
    """Open every label map the index names and check it: a PNG, of the size the index declares
    (sh x sw, when it does), holding only label numbers of the label table (0 = unlabeled).
    Raises one ``BrodenError`` naming each bad file (the first ten) and what to do."""
    problems: list[str] = []
    known = set(dataset.labels) | {0}
    rows = dataset.rows
    for done, row in enumerate(rows, 1):
        for name in row.map_files:
            problem = _label_map_problem(dataset.images_dir / name, row, known)
            if problem:
                problems.append(f"{name} (index line {row.line}): {problem}")
        if progress:
            progress(done, len(rows))
    if problems:
        shown = "; ".join(problems[:MAX_MAP_ERRORS_SHOWN])
        more = len(problems) - MAX_MAP_ERRORS_SHOWN
        raise BrodenError(
            f"{dataset.root}: {len(problems)} label map(s) cannot be used: {shown}"
            + (f"; and {more} more" if more > 0 else "")
            + ". Fix or remove these files (and their rows in index.csv), then import again."
        )


def _label_map_problem(path: Path, row: BrodenRow, known: set[int]) -> str | None:
    try:
        with Image.open(path) as im:
            if im.format != "PNG":
                return f"is a {im.format or 'unknown'} file, not a PNG"
    except FileNotFoundError:
        return "is missing"
    except OSError as exc:
        return f"cannot be read as an image ({exc})"
    try:
        values = read_label_map(path)
    except BrodenError as exc:
        return str(exc).split(": ", 1)[-1]
    if row.map_size is not None and tuple(values.shape[:2]) != row.map_size:
        h, w = row.map_size
        return (
            f"is {values.shape[0]}x{values.shape[1]} pixels; the index declares {h}x{w} (sh x sw)"
        )
    unknown = sorted(set(np.unique(values).tolist()) - known)
    if unknown:
        listed = ", ".join(map(str, unknown[:5])) + (" ..." if len(unknown) > 5 else "")
        return f"holds label number(s) {listed} missing from the label table"
    return None


def read_broden(root: str | Path, *, check_files: bool = True) -> BrodenDataset:
    """Read and check a Broden-layout dataset at ``root``.

    Checks: index.csv and the label table exist with the required columns; every row names an
    image; whole-image labels are integers found in the label table; with ``check_files`` every
    image and label-map file exists. Raises ``BrodenError`` naming the file, row and column.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise BrodenError(f"{root}: no such folder")
    index_path = root / "index.csv"
    if not index_path.is_file():
        raise BrodenError(
            f"{index_path} is missing: a Broden-layout dataset has index.csv "
            "(columns image,split,... and one column per label category)"
        )
    _, labels = _read_label_table(root)
    images_dir = root / "images"
    if not images_dir.is_dir():
        raise BrodenError(
            f"{images_dir}: no such folder; image paths in index.csv are relative to it"
        )
    rows: list[BrodenRow] = []
    missing_files: list[str] = []
    with open(index_path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        header = reader.fieldnames or []
        if "image" not in header:
            raise BrodenError(
                f"{index_path}: no 'image' column (found: {', '.join(header) or 'an empty file'})"
            )
        label_columns = [c for c in header if c not in NON_LABEL_COLUMNS]
        if not label_columns:
            raise BrodenError(
                f"{index_path}: no label columns; add one per category (e.g. object, part, color)"
            )
        for line, rec in enumerate(reader, start=2):
            if rec.get(None):  # csv puts values beyond the header's columns under None
                raise BrodenError(
                    f"{index_path} line {line}: {len(rec[None])} value(s) beyond the "
                    f"{len(header)} columns of the header ({', '.join(rec[None])[:80]}); "
                    "remove them or name their column in the header"
                )
            image = (rec.get("image") or "").strip()
            if not image:
                raise BrodenError(f"{index_path} line {line}: column 'image' is empty")
            if check_files and not (images_dir / image).is_file():
                missing_files.append(f"line {line}: {image}")
            map_files: list[str] = []
            image_labels: list[int] = []
            for column in label_columns:
                for value in (v.strip() for v in (rec.get(column) or "").split(";")):
                    if not value:
                        continue
                    if value.lower().endswith(".png"):
                        map_files.append(value)
                        if check_files and not (images_dir / value).is_file():
                            missing_files.append(f"line {line}: {value}")
                        continue
                    try:
                        number = int(value)
                    except ValueError:
                        raise BrodenError(
                            f"{index_path} line {line}, column {column!r}: {value!r} is neither "
                            "a .png label map nor an integer label number"
                        ) from None
                    if number not in labels:
                        raise BrodenError(
                            f"{index_path} line {line}, column {column!r}: label number {number} "
                            "is not in the label table"
                        )
                    image_labels.append(number)
            rows.append(
                BrodenRow(
                    line=line,
                    image=image,
                    split=(rec.get("split") or "").strip(),
                    map_files=tuple(map_files),
                    image_labels=tuple(image_labels),
                    map_size=_declared_size(rec, index_path=index_path, line=line),
                )
            )
    if not rows:
        raise BrodenError(f"{index_path}: no rows; list at least one image")
    if missing_files:
        shown = "; ".join(missing_files[:5])
        more = f" and {len(missing_files) - 5} more" if len(missing_files) > 5 else ""
        raise BrodenError(
            f"{images_dir}: {len(missing_files)} file(s) named in index.csv are missing "
            f"({shown}{more}); restore them or remove their rows"
        )
    categories = sorted({label.category for label in labels.values()})
    return BrodenDataset(root, rows, labels, label_columns, categories)
