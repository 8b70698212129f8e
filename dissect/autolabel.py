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
LABEL_SIZE_SAMPLE = 16  # label maps read to find the comparison size
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


def _view_box(image_size: tuple[int, int], preprocessing: dict) -> tuple[float, ...]:
    """The network view's box (left, top, right, bottom) in image pixels: short side resize +
    center crop, or the whole image for crop 'none' (``dissect.images.network_view``)."""
    width, height = image_size
    size = int(preprocessing["input_size"])
    if preprocessing.get("crop", "center") == "none":
        return (0.0, 0.0, float(width), float(height))
    resize = int(preprocessing.get("resize", size))
    scale = resize / min(width, height)
    new_w, new_h = max(size, round(width * scale)), max(size, round(height * scale))
    left, top = (new_w - size) // 2, (new_h - size) // 2
    sx, sy = width / new_w, height / new_h
    return (left * sx, top * sy, (left + size) * sx, (top + size) * sy)


def label_view_px(map_shape: tuple[int, int], image_size: tuple[int, int], preprocessing) -> int:
    """The side, in the label map's own pixels, of the network's view of the image: the
    comparison resolution that neither up- nor down-samples the labels (the larger side)."""
    box = _view_box(image_size, preprocessing)
    lh, lw = map_shape
    width, height = image_size
    return max(1, round(max((box[2] - box[0]) * lw / width, (box[3] - box[1]) * lh / height)))


def label_view(
    label_map: np.ndarray, image_size: tuple[int, int], preprocessing: dict, out_px: int
) -> np.ndarray:
    """Apply the network's geometric preprocessing (``dissect.images.network_view``: short side
    resize + center crop, or a plain resize for crop 'none') to a label map, with nearest
    sampling so label numbers stay intact. ``image_size`` is the image's (W, H); the label map may
    have another size (Broden's sh, sw). Returns int64 (out_px, out_px), or ``label_map`` itself
    when the view is the whole map at its own size (nearest sampling would copy it unchanged)."""
    width, height = image_size
    box = _view_box(image_size, preprocessing)
    lh, lw = label_map.shape
    fx, fy = lw / width, lh / height  # image px -> label-map px
    box = (box[0] * fx, box[1] * fy, box[2] * fx, box[3] * fy)
    if box == (0.0, 0.0, float(lw), float(lh)) and lh == lw == out_px:
        return label_map
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
    quantile: float = DEFAULT_QUANTILE,
    mask_px: int | None = None,
    batch_size: int = 32,
    device: str = "auto",
    mask_budget: int = DEFAULT_MASK_BUDGET,
    progress: Progress | None = None,
) -> dict[str, LayerIoU]:
    """IoU of every unit of ``layers`` (aliases or module paths of ``net``, a LoadedNetwork) with
    every label of ``dataset`` over ``rows`` (default: all).

    ``thresholds`` {layer: (units,)} skips the quantile pass for those layers (the run's Unit
    thresholds); missing layers get the ``quantile`` level (0.995: top 0.5 %) from a first pass. Masks and
    label maps are compared at ``mask_px`` square (default: half the network's input size, as
    Broden's 112 px label maps for 224 px images) in the network's view of each image.
    Returns {layer: LayerIoU}."""
    from dissect.engine.extract import place_model
    from dissect.engine.quantile import RunningQuantile
    from dissect.networks import capture_outputs, resolve_layers

    dev = place_model(net, device)  # once: the batches below never move the weights

    def forward_with_layers(net, names, x, device=None):
        resolved = resolve_layers(net, list(names))
        with torch.inference_mode(), capture_outputs(resolved) as captured:
            net.model(x.to(dev))
            acts = {}
            for name, layer in zip(names, resolved, strict=True):
                act = captured[layer.alias].float()
                acts[name] = act[:, :, None, None] if act.dim() == 2 else act
        return None, acts

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
            _, acts = forward_with_layers(net, need, x)
            for layer, act in acts.items():
                if layer not in sketches:
                    sketches[layer] = RunningQuantile(act.shape[1], device=dev)
                sketches[layer].add(act)
            done += x.shape[0]
            if progress:
                progress(done, total)
        for layer in need:
            if layer not in sketches:
                raise AutoLabelError(
                    f"no image of the dataset could be read ({'; '.join(skipped[:3])})"
                )
            thresholds[layer] = sketches[layer].quantile(quantile).cpu()
        done = len(rows)
        skipped.clear()  # the second pass meets the same files
    accumulators: dict[str, IoUAccumulator] = {}
    seen = 0
    for x, maps in _batches(dataset, rows, net.preprocessing, out_px, batch_size, True, skipped):
        _, acts = forward_with_layers(net, layers, x)
        # A pixel value missing from the label table counts as unlabeled, not as a label.
        maps = maps.to(dev)
        maps_in_range = torch.where(maps < dataset.n_labels, maps, torch.zeros_like(maps))
        for layer, act in acts.items():
            units = act.shape[1]
            acc = accumulators.setdefault(layer, IoUAccumulator(units, dataset.n_labels))
            # A few images at a time keep the (images, units, H, W) mask tensor bounded.
            step = max(1, mask_budget // (units * out_px * out_px))
            thr = torch.nan_to_num(thresholds[layer].float(), nan=float("inf")).to(dev)
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


# -- one-pass labels: the loader the extraction's DataLoader workers call -----------------


class BrodenLabelLoader:
    """``load_labels(image_id, path)`` for ``dissect.engine.iter_labeled_batches``: the image's
    label maps (its PNG maps plus whole-image labels as constant planes) in the network's view,
    at ``out_px`` square (nearest), [M, out_px, out_px]; None when the image has no row in
    the dataset (it then counts for top-K and quantiles, not IoU), in the smallest integer dtype
    that holds the label numbers (uint8 up to 255). Maps whose own view size is
    not ``out_px`` are resized (nearest); those whose size is not the set's usual one are
    returned with a note. Picklable (plain data)."""

    def __init__(self, images_dir: Path, rows: dict[str, tuple[tuple[str, ...], tuple[int, ...]]],
                 preprocessing: dict, out_px: int, usual_px: int | None = None) -> None:  # fmt: skip
        self.images_dir = Path(images_dir)
        self.rows = rows  # image path (as the run builds it) -> (map files, image labels)
        self.preprocessing = dict(preprocessing)
        self.out_px = int(out_px)
        # The set's usual view size: a map of another size is noted (a chosen out_px is not).
        self.usual_px = int(usual_px or out_px)

    def __call__(self, image_id: int, path: str):
        from dissect.broden import read_label_map

        entry = self.rows.get(str(path))
        if entry is None:
            return None
        map_files, image_labels = entry
        with Image.open(path) as im:
            size = im.size  # header only: the worker decoded the pixels already
        planes, note = [], ""
        for name in map_files:
            label_map = read_label_map(self.images_dir / name, dtype=None)
            native = label_view_px(label_map.shape, size, self.preprocessing)
            if native != self.usual_px and not note:
                note = (
                    f"label maps {label_map.shape[1]}x{label_map.shape[0]} ({native} px in the "
                    f"network's view) resized to {self.out_px} px (nearest)"
                )
            planes.append(label_view(label_map, size, self.preprocessing, self.out_px))
        planes += [
            np.full((self.out_px, self.out_px), n, np.min_scalar_type(n)) for n in image_labels
        ]
        if not planes:
            planes = [np.zeros((self.out_px, self.out_px), np.uint8)]
        return _compact(np.stack(planes)), note


def _compact(maps: np.ndarray) -> np.ndarray:
    """Label numbers in the smallest integer dtype that holds them (uint8 for up to 255 labels):
    the maps cross from the decoding worker to the main process for every image."""
    if maps.dtype == np.uint8:
        return maps
    top = int(maps.max()) if maps.size else 0
    if int(maps.min(initial=0)) >= 0 and top < 256:
        return maps.astype(np.uint8)
    return maps.astype(
        np.int16 if -(2**15) <= int(maps.min(initial=0)) and top < 2**15 else np.int32
    )


@dataclass
class RunLabels:
    """What a run needs to count IoU in its one pass: the dataset, the picklable loader, the
    comparison size, the labeled share of the run's images and the label -> category table."""

    dataset: BrodenDataset
    loader: BrodenLabelLoader
    size: int
    labeled: int  # run images with a row in index.csv
    images: int  # run images

    def label_category(self) -> torch.Tensor:
        cats = {c: i for i, c in enumerate(self.dataset.categories)}
        table = torch.full((self.dataset.n_labels,), -1, dtype=torch.int64)
        for number, label in self.dataset.labels.items():
            table[number] = cats[label.category]
        return table

    def spec(self, *, quantile: float, denominator: str = "plain", window_thresholds=None,
             below_fraction: float = 0.5):  # fmt: skip
        from dissect.engine.extract import LabelSpec

        return LabelSpec(
            n_labels=self.dataset.n_labels,
            label_category=self.label_category(),
            denominator=denominator,
            size=(self.size, self.size),
            resize_labels=False,  # the loader already returns every map at ``size``
            level=float(quantile),
            window_thresholds=window_thresholds,
            below_fraction=below_fraction,
        )


def run_label_dataset(run) -> BrodenDataset:
    """The run's image set's pixel labels (``ImageSet.labels_dir``, Broden layout)."""
    image_set = run.image_set
    if image_set is None or not image_set.labels_dir:
        raise AutoLabelError(
            f"run {run.pk}: image set {getattr(image_set, 'name', '?')} has no pixel labels; "
            "import a Broden-layout dataset with `python manage.py import_broden DIR` and "
            "dissect that image set"
        )
    try:
        return read_broden(image_set.labels_dir, check_files=False)
    except BrodenError as exc:
        raise AutoLabelError(f"run {run.pk}: labels of image set {image_set.name}: {exc}") from exc


def run_labels(run, items: Sequence[tuple[int, str]], preprocessing: dict,
               iou_px: int | None = None) -> RunLabels:  # fmt: skip
    """The one-pass label setup for ``items`` (image id, absolute path as the run builds it).
    ``iou_px``: comparison resolution; default the label maps' own size in the network's view
    (the most common one among ``LABEL_SIZE_SAMPLE`` labeled images; maps of another size are
    resized, nearest, and noted)."""
    from dissect.broden import read_label_map

    dataset = run_label_dataset(run)
    images_dir = dataset.images_dir.resolve()
    by_image = dataset.row_by_image()
    rows: dict[str, tuple[tuple[str, ...], tuple[int, ...]]] = {}
    with_maps = []
    for _image_id, path in items:
        try:
            key = Path(path).resolve().relative_to(images_dir).as_posix()
        except ValueError:
            continue
        row = by_image.get(key)
        if row is not None:
            rows[str(path)] = (row.map_files, row.image_labels)
            if row.map_files:
                with_maps.append((path, row.map_files[0]))
    size = 0
    if with_maps:
        # The most common view size of a few maps spread over the items (ties: the larger).
        step = max(1, len(with_maps) // LABEL_SIZE_SAMPLE)
        sizes = []
        for path, name in with_maps[::step][:LABEL_SIZE_SAMPLE]:
            with Image.open(path) as im:
                image_size = im.size
            shape = read_label_map(dataset.images_dir / name).shape
            sizes.append(label_view_px(shape, image_size, preprocessing))
        size = max(set(sizes), key=lambda v: (sizes.count(v), v))
    if not size:  # whole-image labels only: any size counts the same fractions
        size = max(16, int(preprocessing["input_size"]) // 2)
    usual, size = size, int(iou_px or size)
    loader = BrodenLabelLoader(dataset.images_dir, rows, preprocessing, size, usual)
    return RunLabels(dataset, loader, size, len(rows), len(items))


def auto_labels_write(run, layer_counts: dict, dataset: BrodenDataset) -> int:
    """Replace the AutoLabel rows of the layers in ``layer_counts`` {layer: IoUCounts} (per unit
    the best label overall and per category, IoU > 0) and their rows in the run's counts CSV
    (``auto_label_counts_path``: one row per unit x category with the intersection, unit area
    and label area behind the score). Returns the AutoLabel rows written."""
    import csv
    import io

    from django.db import transaction

    from dissect import artifacts
    from dissect.models import AutoLabel, Unit
    from dissect.services.extraction import COUNTS_COLUMNS, auto_label_counts_path

    counts_name = auto_label_counts_path(run.pk)
    stored = artifacts.text_read(counts_name)
    kept = []
    if stored is not None:
        kept = [r for r in csv.DictReader(io.StringIO(stored)) if r["layer"] not in layer_counts]
    written, csv_rows = 0, []
    with transaction.atomic():
        for name, counts in layer_counts.items():
            unit_ids = dict(
                Unit.objects.filter(layer__run=run, layer__name=name).values_list("index", "id")
            )
            AutoLabel.objects.filter(unit__layer__run=run, unit__layer__name=name).delete()
            best = best_labels_by_category(counts.iou, dataset)
            objs = []
            for per_unit in best:
                for lab in per_unit:
                    if lab.unit not in unit_ids:
                        continue
                    objs.append(AutoLabel(unit_id=unit_ids[lab.unit], category=lab.category,
                                          label=lab.label, iou=lab.iou))  # fmt: skip
                    u, n = lab.unit, lab.label_number
                    csv_rows.append({
                        "layer": name, "unit": u, "category": lab.category, "label": lab.label,
                        "label_number": n, "iou": f"{lab.iou:.6f}",
                        "intersection": int(round(float(counts.intersection[u, n]))),
                        "unit_area": int(round(float(counts.unit_area[u, n]))),
                        "label_area": int(counts.label_area[n]),
                        "threshold": f"{float(counts.thresholds[u]):.7g}",
                        "exact": int(bool(counts.exact[u])), "denominator": counts.denominator,
                    })  # fmt: skip
            AutoLabel.objects.bulk_create(objs, batch_size=2000)
            written += len(objs)
    out = io.StringIO(newline="")
    writer = csv.DictWriter(out, fieldnames=COUNTS_COLUMNS)
    writer.writeheader()
    writer.writerows(kept + csv_rows)
    artifacts.text_save(counts_name, out.getvalue())
    return written


# -- the stage for runs dissected without labels (Django) ------------------------------------


def run_auto_labels(
    *,
    run_id: int,
    layers: Sequence[str] | None = None,
    max_images: int | None = None,
    batch_size: int | None = None,
    progress: Progress | None = None,
) -> int:
    """Compute and store the automatic labels of a run's units (its merged Unit rows must exist):
    for runs dissected before one-pass labels, or without them (``--no-auto-labels``).

    One pass over the run's labeled images with the same engine piece as the run's own pass
    (``BinnedIoU`` via ``extract_unit_stats``), read at the run's stored unit thresholds (its
    quantile level), so the counts are exact; replaces the AutoLabel rows of the layers and
    their rows in the counts CSV. The model is moved to its device once. Records progress under
    stage ``auto_label`` on the run. Returns the rows written."""
    from dissect import run_progress, services
    from dissect.engine import extract_unit_stats, iter_labeled_batches, place_model
    from dissect.models import DissectionRun
    from dissect.selectors import run_ordered_images

    run = DissectionRun.objects.select_related("network", "image_set").get(pk=run_id)
    if run.status in (DissectionRun.Status.CANCELLED, DissectionRun.Status.FAILED):
        return 0
    from dissect.image_store import image_set_localize

    image_set_localize(run.image_set)  # this host's copy when the files are in the object store
    dataset = run_label_dataset(run)
    layer_rows = {layer.name: layer for layer in run.layer_set.all()}
    names = list(layers or [n for n in run.layers if n in layer_rows])
    unknown = [n for n in names if n not in layer_rows]
    if unknown or not names:
        raise AutoLabelError(
            f"run {run_id} has no merged layer {', '.join(unknown) or '(none yet)'}; "
            f"layers with units: {', '.join(layer_rows) or 'none (merge the run first)'}"
        )
    root = Path(run.image_set.root)
    items = [
        (image_id, str(root / rel))
        for image_id, rel in run_ordered_images(run=run).values_list("id", "path").iterator()
    ]
    net = services.network_load(network=run.network)
    params = run.parameters
    labels = run_labels(run, items, net.preprocessing, params.get("iou_px"))
    items = [item for item in items if item[1] in labels.loader.rows]
    if max_images:
        items = items[:max_images]
    if not items:
        raise AutoLabelError(
            f"run {run_id}: none of the run's images appear in {dataset.root / 'index.csv'} "
            f"(image set root {run.image_set.root}, labels under {dataset.images_dir})"
        )
    # The run's unit thresholds (its quantile level) are the ones explain() masks with.
    quantile = float(params.get("quantile", DEFAULT_QUANTILE))
    thresholds = {}
    for name in names:
        values = list(layer_rows[name].units.order_by("index").values_list("threshold", flat=True))
        if values and all(v is not None for v in values):
            thresholds[name] = torch.tensor(values, dtype=torch.float32)
    spec = labels.spec(
        quantile=quantile,
        denominator=params.get("iou_denominator", "plain"),
        window_thresholds=thresholds or None,
    )
    if run.status == DissectionRun.Status.RUNNING:
        run_progress.stage_set(run_id, "auto_label")
    reporter = progress or run_progress.StageProgress(
        run_id, "auto_label", len(items), label="auto labels"
    )
    started = time.monotonic()
    device = place_model(net, params.get("device", "auto"))
    batches = iter_labeled_batches(
        items,
        net.preprocessing,
        labels.loader,
        batch_size=int(batch_size or params.get("batch_size", 32)),
        workers=int(params.get("workers", 0)),
    )
    stats = extract_unit_stats(
        net, names, batches, top_k=1, controls=1, device=device, labels=spec,
        progress=reporter, total=len(items), restore_device=False,
    )  # fmt: skip
    counts = {}
    for name in names:
        layer_stats = stats[name]
        if layer_stats.iou is None or not layer_stats.iou.n_images:
            raise AutoLabelError(f"run {run_id}: no labeled image of the dataset could be read")
        if name in thresholds:
            counts[name] = layer_stats.iou.counts_at(thresholds[name])
        else:
            counts[name] = layer_stats.iou_counts()
    written = auto_labels_write(run, counts, dataset)
    if progress is None:
        reporter.close(len(items))
    run_progress.timing_add(run_id, "auto_label", time.monotonic() - started)
    return written
