"""Automatic unit labels from pixel-labeled images (Network Dissection, Bau et al. 2017).

For every unit of the chosen layers: threshold its activation maps at the unit's top-0.5 %
quantile (the run's threshold when it was computed at that level, else a first pass with the
engine's quantile sketch), upsample bilinearly to the label-map size, pool intersection and
union with every label over the whole dataset (``dissect.netdissect.IoUAccumulator``), then keep
the best-IoU label per category and overall.

Memory is bounded: activations stream batch by batch, masks are built a few images at a time
(at most ``mask_budget`` mask pixels), and the accumulated state is units x labels counts.

``compute_auto_labels`` is plain torch (no Django); ``run_auto_labels`` is the run's optional
stage: it reads the run's image set (``ImageSet.labels_dir`` in the Broden layout) and writes
``dissect.AutoLabel`` rows.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from dissect.broden import BrodenDataset, BrodenError, BrodenRow, read_broden
from dissect.images import BadImageError, load_rgb, preprocess_transform
from dissect.netdissect import DEFAULT_QUANTILE, IoUAccumulator, unit_masks

logger = logging.getLogger(__name__)

__all__ = [
    "AutoLabelError",
    "UnitAutoLabel",
    "LayerIoU",
    "best_labels_by_category",
    "compute_auto_labels",
    "label_view",
    "run_auto_labels",
]

Progress = Callable[[int, int], None]
DEFAULT_MASK_BUDGET = 1 << 24  # mask pixels per chunk (16 M bools; the float upsample is 4x)


class AutoLabelError(ValueError):
    """Automatic labels cannot be computed; the message says what to do."""


@dataclass(frozen=True)
class UnitAutoLabel:
    """One unit's best label in ``category`` ('' = over all categories)."""

    unit: int
    category: str
    label: str
    label_number: int
    iou: float


@dataclass
class LayerIoU:
    """Dataset-pooled IoU of every unit of a layer with every label, and the thresholds used."""

    layer: str
    iou: torch.Tensor  # (units, n_labels) float32; column 0 ("no label") is 0
    thresholds: torch.Tensor  # (units,)
    images: int


def label_view(
    label_map: np.ndarray, image_size: tuple[int, int], preprocessing: dict, out_px: int
) -> np.ndarray:
    """Apply the network's geometric preprocessing (``dissect.images.network_view``: short side
    resize + center crop, or a plain resize for crop 'none') to a label map, with nearest
    sampling so label numbers stay intact. ``image_size`` is the image's (W, H); the label map may
    have another size (Broden's sh, sw). Returns int64 (out_px, out_px)."""
    width, height = image_size
    size = int(preprocessing["input_size"])
    if preprocessing.get("crop", "center") == "none":
        box = (0.0, 0.0, float(width), float(height))
    else:
        resize = int(preprocessing.get("resize", size))
        scale = resize / min(width, height)
        new_w, new_h = max(size, round(width * scale)), max(size, round(height * scale))
        left, top = (new_w - size) // 2, (new_h - size) // 2
        sx, sy = width / new_w, height / new_h
        box = (left * sx, top * sy, (left + size) * sx, (top + size) * sy)
    lh, lw = label_map.shape
    fx, fy = lw / width, lh / height  # image px -> label-map px
    box = (box[0] * fx, box[1] * fy, box[2] * fx, box[3] * fy)
    img = Image.fromarray(label_map.astype(np.int32), mode="I")
    return np.asarray(img.resize((out_px, out_px), Image.NEAREST, box=box), dtype=np.int64)


def _load_row(
    dataset: BrodenDataset, row: BrodenRow, transform, preprocessing: dict, out_px: int, maps: bool
):
    image = load_rgb(dataset.images_dir / row.image)
    x = transform(image)
    if not maps:
        return x, None
    planes = [
        label_view(m, image.size, preprocessing, out_px) for m in dataset.read_label_maps(row)
    ]
    planes += [np.full((out_px, out_px), number, np.int64) for number in row.image_labels]
    if not planes:
        planes = [np.zeros((out_px, out_px), np.int64)]
    return x, np.stack(planes)


def _batches(
    dataset: BrodenDataset,
    rows: Sequence[BrodenRow],
    preprocessing: dict,
    out_px: int,
    batch_size: int,
    maps: bool,
    skipped: list[str],
):
    """Yield (x [B, 3, S, S], label maps [B, M, out_px, out_px] int64 or None); unreadable images
    are skipped and named in ``skipped``."""
    transform = preprocess_transform(preprocessing)
    xs, planes = [], []
    for row in rows:
        try:
            x, p = _load_row(dataset, row, transform, preprocessing, out_px, maps)
        except BadImageError as exc:
            skipped.append(str(exc))
            continue
        xs.append(x)
        planes.append(p)
        if len(xs) == batch_size:
            yield torch.stack(xs), _stack_planes(planes) if maps else None
            xs, planes = [], []
    if xs:
        yield torch.stack(xs), _stack_planes(planes) if maps else None


def _stack_planes(planes: list[np.ndarray]) -> torch.Tensor:
    depth = max(p.shape[0] for p in planes)
    out = np.zeros((len(planes), depth, *planes[0].shape[1:]), np.int64)
    for i, p in enumerate(planes):
        out[i, : p.shape[0]] = p
    return torch.from_numpy(out)


def compute_auto_labels(
    *,
    net,
    layers: Sequence[str],
    dataset: BrodenDataset,
    rows: Sequence[BrodenRow] | None = None,
    thresholds: dict[str, torch.Tensor] | None = None,
    top_fraction: float = DEFAULT_QUANTILE,
    mask_px: int | None = None,
    batch_size: int = 32,
    device: str = "auto",
    mask_budget: int = DEFAULT_MASK_BUDGET,
    progress: Progress | None = None,
) -> dict[str, LayerIoU]:
    """IoU of every unit of ``layers`` (aliases or module paths of ``net``, a LoadedNetwork) with
    every label of ``dataset`` over ``rows`` (default: all).

    ``thresholds`` {layer: (units,)} skips the quantile pass for those layers (the run's Unit
    thresholds); missing layers get the top-``top_fraction`` level from a first pass. Masks and
    label maps are compared at ``mask_px`` square (default: half the network's input size, as
    Broden's 112 px label maps for 224 px images) in the network's view of each image.
    Returns {layer: LayerIoU}."""
    from dissect.engine.quantile import RunningQuantile
    from dissect.networks.forward import forward_with_layers

    rows = list(dataset.rows if rows is None else rows)
    if not rows:
        raise AutoLabelError("no images to label: the dataset has no rows for this image set")
    layers = list(layers)
    out_px = int(mask_px or max(16, net.input_size // 2))
    thresholds = dict(thresholds or {})
    need = [layer for layer in layers if layer not in thresholds]
    total = len(rows) * (2 if need else 1)
    done = 0
    skipped: list[str] = []
    if need:
        sketches: dict[str, RunningQuantile] = {}
        for x, _ in _batches(dataset, rows, net.preprocessing, out_px, batch_size, False, skipped):
            _, acts = forward_with_layers(net, need, x, device=device)
            for layer, act in acts.items():
                if layer not in sketches:
                    sketches[layer] = RunningQuantile(act.shape[1])
                sketches[layer].add(act)
            done += x.shape[0]
            if progress:
                progress(done, total)
        for layer in need:
            if layer not in sketches:
                raise AutoLabelError(
                    f"no image of the dataset could be read ({'; '.join(skipped[:3])})"
                )
            thresholds[layer] = sketches[layer].quantile(1.0 - top_fraction)
        done = len(rows)
        skipped.clear()  # the second pass meets the same files
    accumulators: dict[str, IoUAccumulator] = {}
    seen = 0
    for x, maps in _batches(dataset, rows, net.preprocessing, out_px, batch_size, True, skipped):
        _, acts = forward_with_layers(net, layers, x, device=device)
        # A pixel value missing from the label table counts as unlabeled, not as a label.
        maps_in_range = torch.where(maps < dataset.n_labels, maps, torch.zeros_like(maps))
        for layer, act in acts.items():
            units = act.shape[1]
            acc = accumulators.setdefault(layer, IoUAccumulator(units, dataset.n_labels))
            # A few images at a time keep the (images, units, H, W) mask tensor bounded.
            step = max(1, mask_budget // (units * out_px * out_px))
            thr = torch.nan_to_num(thresholds[layer].float(), nan=float("inf"))
            for start in range(0, act.shape[0], step):
                masks = unit_masks(act[start : start + step], thr, (out_px, out_px))
                acc.add(masks, maps_in_range[start : start + step])
        seen += x.shape[0]
        done += x.shape[0]
        if progress:
            progress(done, total)
    if skipped:
        logger.warning(
            "auto labels: %d unreadable image(s) skipped, e.g. %s", len(skipped), skipped[0]
        )
    if not accumulators:
        raise AutoLabelError(f"no image of the dataset could be read ({'; '.join(skipped[:3])})")
    return {
        layer: LayerIoU(layer, accumulators[layer].iou(), thresholds[layer], seen)
        for layer in layers
    }


def best_labels_by_category(iou: torch.Tensor, dataset: BrodenDataset) -> list[list[UnitAutoLabel]]:
    """Per unit: the best label overall (category '') and per category, each with IoU > 0 (a
    category whose labels never overlap the unit's mask gives no row). Ties go to the lower
    label number."""
    n_units, n_labels = iou.shape
    by_category: dict[str, list[int]] = {}
    for number, label in dataset.labels.items():
        if number < n_labels:
            by_category.setdefault(label.category, []).append(number)
    result: list[list[UnitAutoLabel]] = [[] for _ in range(n_units)]
    groups = [("", sorted(n for ns in by_category.values() for n in ns))]
    groups += [(cat, sorted(ns)) for cat, ns in sorted(by_category.items())]
    for category, numbers in groups:
        if not numbers:
            continue
        cols = torch.tensor(numbers, dtype=torch.int64)
        values, where = iou.index_select(1, cols).max(dim=1)
        for unit in range(n_units):
            value = float(values[unit])
            if value > 0:
                number = numbers[int(where[unit])]
                result[unit].append(
                    UnitAutoLabel(unit, category, dataset.labels[number].name, number, value)
                )
    return result


# -- the run's stage (Django) ----------------------------------------------------------------


def _run_rows(run, dataset: BrodenDataset, max_images: int | None):
    """The dataset rows of the run's usable images (matched by path under ``images/``)."""
    from dissect.selectors import run_ordered_images

    images_dir = dataset.images_dir.resolve()
    root = Path(run.image_set.root).resolve()
    by_path = dataset.row_by_image()
    rows = []
    for rel in run_ordered_images(run=run).values_list("path", flat=True).iterator():
        try:
            key = (root / rel).resolve().relative_to(images_dir).as_posix()
        except ValueError:
            continue
        row = by_path.get(key)
        if row is not None:
            rows.append(row)
            if max_images and len(rows) >= max_images:
                break
    return rows


def run_auto_labels(
    *,
    run_id: int,
    layers: Sequence[str] | None = None,
    max_images: int | None = None,
    batch_size: int | None = None,
    progress: Progress | None = None,
) -> int:
    """Compute and store the automatic labels of a run's units (its merged Unit rows must exist).

    Uses the run's image set labels (``ImageSet.labels_dir``, Broden layout) and the run's unit
    thresholds (its quantile level, top 0.5 % by default), and replaces the AutoLabel rows of the
    layers. Records progress under stage ``auto_label`` on the run. Returns the rows written."""
    import torch
    from django.db import transaction

    from dissect import run_progress, services
    from dissect.models import AutoLabel, DissectionRun, Unit

    run = DissectionRun.objects.select_related("network", "image_set").get(pk=run_id)
    if run.status in (DissectionRun.Status.CANCELLED, DissectionRun.Status.FAILED):
        return 0
    image_set = run.image_set
    if image_set is None or not image_set.labels_dir:
        raise AutoLabelError(
            f"run {run_id}: image set {getattr(image_set, 'name', '?')} has no pixel labels; "
            "import a Broden-layout dataset with `python manage.py import_broden DIR` and "
            "dissect that image set"
        )
    try:
        dataset = read_broden(image_set.labels_dir, check_files=False)
    except BrodenError as exc:
        raise AutoLabelError(f"run {run_id}: labels of image set {image_set.name}: {exc}") from exc
    layer_rows = {layer.name: layer for layer in run.layer_set.all()}
    names = list(layers or [n for n in run.layers if n in layer_rows])
    unknown = [n for n in names if n not in layer_rows]
    if unknown or not names:
        raise AutoLabelError(
            f"run {run_id} has no merged layer {', '.join(unknown) or '(none yet)'}; "
            f"layers with units: {', '.join(layer_rows) or 'none (merge the run first)'}"
        )
    rows = _run_rows(run, dataset, max_images)
    if not rows:
        raise AutoLabelError(
            f"run {run_id}: none of the run's images appear in {dataset.root / 'index.csv'} "
            f"(image set root {image_set.root}, labels under {dataset.images_dir})"
        )
    # The run's quantile level (top 0.5 % by default) is the level explain() thresholds at, so
    # the labels describe the very masks explain() shows: reuse the run's unit thresholds.
    top_fraction = 1.0 - float(run.parameters.get("quantile", 1.0 - DEFAULT_QUANTILE))
    thresholds = {}
    for name in names:
        values = list(layer_rows[name].units.order_by("index").values_list("threshold", flat=True))
        if values and all(v is not None for v in values):
            thresholds[name] = torch.tensor(values, dtype=torch.float32)
    if run.status == DissectionRun.Status.RUNNING:
        run_progress.stage_set(run_id, "auto_label")
    total = len(rows) * (1 if len(thresholds) == len(names) else 2)
    reporter = progress or run_progress.StageProgress(
        run_id, "auto_label", total, label="auto labels"
    )
    started = time.monotonic()
    net = services.network_load(network=run.network)
    results = compute_auto_labels(
        net=net,
        layers=names,
        dataset=dataset,
        rows=rows,
        thresholds=thresholds,
        top_fraction=top_fraction,
        batch_size=int(batch_size or run.parameters.get("batch_size", 32)),
        device=str(run.parameters.get("device", "auto")),
        progress=reporter,
    )
    written = 0
    with transaction.atomic():
        for name in names:
            unit_ids = dict(Unit.objects.filter(layer=layer_rows[name]).values_list("index", "id"))
            AutoLabel.objects.filter(unit__layer=layer_rows[name]).delete()
            labels = best_labels_by_category(results[name].iou, dataset)
            objs = [
                AutoLabel(
                    unit_id=unit_ids[lab.unit], category=lab.category, label=lab.label, iou=lab.iou
                )
                for per_unit in labels
                for lab in per_unit
                if lab.unit in unit_ids
            ]
            AutoLabel.objects.bulk_create(objs, batch_size=2000)
            written += len(objs)
    if progress is None:
        reporter.close(total)
    run_progress.timing_add(run_id, "auto_label", time.monotonic() - started)
    return written
