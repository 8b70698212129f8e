"""Reader for the ICLR'15 authors' released unit annotations (unitAnnotation_*.mat).

The released files ship with the package in `data/iclr15/` (MIT, with their LICENSE and a
PROVENANCE note). Layout (see `data/iclr15/README.md`): `layerAnnotation` is a 5x2 cell,
one row per layer: a U x 9 cell (three answers per unit as description, category code, precision)
and the layer name; `layerAverageCount` is 5x6, the authors' share of answers per category.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.concepts.vocabulary import CATEGORY_KEYS

# The task's category codes 1..6 in the released files, in the paper's order.
CATEGORY_BY_CODE: dict[int, str] = {code: key for code, key in enumerate(CATEGORY_KEYS, start=1)}
# Each released precision is a multiple of 1/57: 57 of the unit's own images were scored per task.
SCORED_IMAGES = 57

# The authors' two released files, packaged with CrowdDissect (see data/iclr15/PROVENANCE.md).
PACKAGED_DIR = Path(__file__).resolve().parent / "data" / "iclr15"
PACKAGED_FILES = ("unitAnnotation_places205-alexnet.mat", "unitAnnotation_imagenet-alexnet.mat")


def packaged_paths() -> list[Path]:
    """The packaged released files: Places205-AlexNet first, then ImageNet-AlexNet."""
    return [PACKAGED_DIR / name for name in PACKAGED_FILES]


@dataclass(frozen=True)
class Iclr15Answer:
    """One worker's answer for one unit."""

    description: str
    category: str
    category_code: int
    precision: float


@dataclass(frozen=True)
class Iclr15Layer:
    """One layer: its name and, per unit (index = unit number), the three answers."""

    name: str
    units: list[list[Iclr15Answer]]


@dataclass(frozen=True)
class Iclr15File:
    """A whole released file."""

    path: Path
    layers: list[Iclr15Layer]
    layer_average_count: np.ndarray  # layers x 6, fractions per category (the authors' numbers)

    def reference_distribution(self) -> dict[str, dict[str, float]]:
        """The authors' per-layer category distribution, in percent, keyed by layer and category."""
        return {
            layer.name: {
                CATEGORY_BY_CODE[c + 1]: float(self.layer_average_count[i, c]) * 100.0
                for c in range(len(CATEGORY_KEYS))
            }
            for i, layer in enumerate(self.layers)
        }


def network_name_from_path(path: Path | str) -> str:
    """'unitAnnotation_places205-alexnet.mat' -> 'places205-alexnet' (the file's own naming)."""
    stem = Path(path).stem
    return stem.split("_", 1)[1] if stem.startswith("unitAnnotation_") else stem


def _scalar(cell, *, what: str, where: str) -> float:
    array = np.asarray(cell).ravel()
    if array.size != 1:
        raise ValueError(f"{where}: expected one number for {what}, found {array.size} values")
    return float(array[0])


def _text(cell) -> str:
    array = np.asarray(cell).ravel()
    return str(array[0]).strip() if array.size else ""


def read_iclr15(path: Path | str) -> Iclr15File:
    """Read one unitAnnotation_*.mat file; a ValueError names the layer/unit/field that is off."""
    from scipy.io import loadmat  # scipy is only needed here; keep web imports light

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file (expected a unitAnnotation_*.mat file)")
    try:
        mat = loadmat(str(path))
    except Exception as error:  # scipy raises several types for a non-MATLAB file
        raise ValueError(f"{path}: not a MATLAB v5 .mat file ({error})") from error
    for key in ("layerAnnotation", "layerAverageCount"):
        if key not in mat:
            raise ValueError(
                f"{path}: variable {key!r} missing; is this an ICLR'15 annotation file?"
            )
    cells = mat["layerAnnotation"]
    layers: list[Iclr15Layer] = []
    for row in range(cells.shape[0]):
        name = _text(cells[row, 1]) or f"layer{row + 1}"
        table = cells[row, 0]
        if table.ndim != 2 or table.shape[1] % 3:
            raise ValueError(f"{path}: layer {name}: expected U x 9 cells, found {table.shape}")
        units: list[list[Iclr15Answer]] = []
        for unit in range(table.shape[0]):
            answers = []
            for k in range(table.shape[1] // 3):
                where = f"{path.name}: layer {name}, unit {unit}, answer {k + 1}"
                code = int(_scalar(table[unit, 3 * k + 1], what="category", where=where))
                if code not in CATEGORY_BY_CODE:
                    raise ValueError(f"{where}: category code {code} is not one of 1..6")
                precision = _scalar(table[unit, 3 * k + 2], what="precision", where=where)
                if not 0.0 <= precision <= 1.0:
                    raise ValueError(f"{where}: precision {precision} outside [0, 1]")
                answers.append(
                    Iclr15Answer(
                        description=_text(table[unit, 3 * k]),
                        category=CATEGORY_BY_CODE[code],
                        category_code=code,
                        precision=precision,
                    )
                )
            units.append(answers)
        layers.append(Iclr15Layer(name=name, units=units))
    average = np.asarray(mat["layerAverageCount"], dtype=float)
    if average.shape != (len(layers), len(CATEGORY_KEYS)):
        raise ValueError(
            f"{path}: layerAverageCount has shape {average.shape}, expected ({len(layers)}, 6)"
        )
    return Iclr15File(path=path, layers=layers, layer_average_count=average)


def category_distribution(answers: list[Iclr15Answer]) -> dict[str, float]:
    """Percent of `answers` per category (all six keys present)."""
    total = len(answers)
    counts = dict.fromkeys(CATEGORY_KEYS, 0)
    for answer in answers:
        counts[answer.category] += 1
    return {k: (100.0 * v / total if total else 0.0) for k, v in counts.items()}
