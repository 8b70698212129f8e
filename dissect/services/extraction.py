"""Extraction (one shard at a time), the merge of shard states into rows, and the optional
empirical receptive field."""

from __future__ import annotations

import json
import logging
import math
import socket
import time
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

from django.db import transaction
from django.utils import timezone

from dissect import artifacts
from dissect.models import DissectionRun, Image, Layer, Shard, Unit, UnitImage
from dissect.run_progress import StageProgress, progress_set, stage_set, timing_add
from dissect.selectors import run_ordered_images
from dissect.services.common import DEFAULTS, PipelineError, active_run, png_bytes
from dissect.services.image_sets import image_mark_bad
from dissect.services.networks import network_load
from dissect.storage import save_content_addressed

logger = logging.getLogger(__name__)

# Images (spread over the run) whose quantile sketch centers every shard's IoU window, and the
# share of the window (2 octaves, 128 bins each) below that estimate: an eighth, i.e. the counts
# start at 2^-1/4 = 0.84x the sample's threshold. The counting cost is proportional to the pixels
# above that edge (about 2.3x the final mask area on demo conv5, against 4.6x from 0.71x). On
# 1,000 demo images the final threshold was >= 0.876x the sample's for every unit of all six
# layers; a unit whose final threshold falls below the edge is reported (inexact, with bounds).
IOU_WINDOW_SAMPLE = 256
IOU_BELOW_FRACTION = 0.125


def shard_state_path(run_id: int, index: int) -> str:
    """The shard state's artifact name (``dissect.artifacts``): not a local path."""
    return artifacts.shard_state_name(run_id, index)


def _image_items(run: DissectionRun, shard: Shard) -> list[tuple[int, str]]:
    """(image id, absolute path) of the shard's usable images, in id order."""
    root = Path(run.image_set.root)
    bounds = run.parameters["shard_bounds"]
    rows = run_ordered_images(run=run).filter(
        id__gte=bounds[shard.index], id__lt=bounds[shard.index + 1]
    )
    return [(image_id, str(root / path)) for image_id, path in rows.values_list("id", "path")]


COUNTS_COLUMNS = ["layer", "unit", "category", "label", "label_number", "iou", "intersection",
                  "unit_area", "label_area", "threshold", "exact", "denominator"]  # fmt: skip


def auto_label_counts_path(run_id: int) -> str:
    """The artifact name of the run's automatic-label counts CSV: one row
    per unit x category (the AutoLabel rows) with the intersection, unit area and label area
    behind each IoU, the threshold, whether the count is exact, and the IoU's denominator."""
    return artifacts.counts_csv_name(run_id)


def auto_label_counts(*, run: DissectionRun, layer: str | None = None) -> list[dict]:
    """The rows of the run's counts CSV (numbers as numbers); [] when the run has none."""
    import csv
    import io

    text = artifacts.text_read(artifacts.counts_csv_name(run.pk))
    if text is None:
        return []
    ints = ("unit", "label_number", "intersection", "unit_area", "label_area", "exact")
    rows = []
    for row in csv.DictReader(io.StringIO(text, newline="")):
        if layer is not None and row["layer"] != layer:
            continue
        for key in ints:
            row[key] = int(row[key])
        row["iou"], row["threshold"] = float(row["iou"]), float(row["threshold"])
        row["exact"] = bool(row["exact"])
        rows.append(row)
    return rows


def auto_label_counts_csv(rows: list[dict]) -> str:
    """``rows`` as CSV text for a person's spreadsheet (text cells made formula-safe)."""
    import csv
    import io

    try:
        from core.csv_safe import safe_cell
    except ImportError:  # pragma: no cover - older checkouts: labels never start with = + - @

        def safe_cell(value):
            bad = isinstance(value, str) and value.startswith(("=", "+", "-", "@", "\t", "\r"))
            return "'" + value if bad else value

    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(COUNTS_COLUMNS)
    for row in rows:
        writer.writerow([safe_cell(int(v) if isinstance(v, bool) else v)
                         for v in (row[c] for c in COUNTS_COLUMNS)])  # fmt: skip
    return out.getvalue()


def shard_labels_path(run_id: int, index: int) -> str:
    """The artifact name of the shard's label tally (JSON): images counted for IoU, images
    without label maps, label maps resized, label files that failed, and the first note."""
    return artifacts.shard_labels_name(run_id, index)


def auto_labels_on(run: DissectionRun) -> bool:
    """Automatic labels in the run's one pass: when its image set has pixel labels, unless the
    run says ``auto_labels: false``. ``auto_labels: true`` without labels is an error."""
    wanted = run.parameters.get("auto_labels")
    has_labels = bool(run.image_set and run.image_set.labels_dir)
    if wanted is True and not has_labels:
        raise PipelineError(
            f"run {run.pk}: automatic labels need pixel labels, and image set "
            f"{getattr(run.image_set, 'name', '?')} has none; import a Broden-layout dataset with "
            "`python manage.py import_broden DIR` and dissect that image set, or turn "
            "auto labels off (--no-auto-labels)"
        )
    return has_labels and wanted is not False


def _all_items(run: DissectionRun) -> list[tuple[int, str]]:
    root = Path(run.image_set.root)
    return [(i, str(root / p)) for i, p in run_ordered_images(run=run).values_list("id", "path")]


def iou_windows(run: DissectionRun, net, device, *, on_failure=None) -> dict[str, list[float]]:
    """Per layer and unit, the center of the IoU counting window, the same for every shard of
    the run (so shard windows agree and merging stays exact whatever the sharding): the
    quantile-level threshold of ``IOU_WINDOW_SAMPLE`` images spread evenly over the run, computed
    once by the first shard and stored as ``run.parameters["iou_window"]``."""
    import math as _math

    from dissect.engine.extract import extract_unit_stats
    from dissect.images import iter_image_batches

    stored = run.parameters.get("iou_window")
    if stored:
        return stored
    items = _all_items(run)
    step = max(1, len(items) // IOU_WINDOW_SAMPLE)
    sample = items[::step][:IOU_WINDOW_SAMPLE]
    q = float(run.parameters.get("quantile", DEFAULTS["quantile"]))
    stats = extract_unit_stats(
        net, run.layers,
        iter_image_batches(sample, net.preprocessing, batch_size=run.parameters.get(
            "batch_size", 32), workers=0, on_failure=on_failure),
        top_k=1, controls=1, device=device, restore_device=False,
    )  # fmt: skip
    window = {
        alias: [v if _math.isfinite(v) else 0.0 for v in s.threshold(q).tolist()]
        for alias, s in stats.items()
    }
    with transaction.atomic():
        row = DissectionRun.objects.select_for_update().only("parameters").get(pk=run.pk)
        if row.parameters.get("iou_window"):
            window = row.parameters["iou_window"]  # another shard stored it first: use that one
        else:
            DissectionRun.objects.filter(pk=run.pk).update(
                parameters={**row.parameters, "iou_window": window}
            )
    run.parameters = {**run.parameters, "iou_window": window}
    return window


def shard_extract(*, run_id: int, shard_index: int, attempt: int | None = None) -> None:
    """One pass over one shard's images: each image decoded once (DataLoader workers), one
    forward pass per batch for all layers, and from it per layer the top-K, controls, quantile
    sketch, the kept images' activation maps (fp16, for rendering) and, when the image set has
    pixel labels, the IoU counts (``BinnedIoU``) for the automatic labels. Stores the partial
    state as artifact ``<run>/shard-<index>.pt`` (+ a ``.labels.json`` tally). Idempotent: a
    re-run overwrites its own files. Files that fail to decode are marked bad and skipped. A
    CUDA out-of-memory error becomes a PipelineError naming the batch size to lower."""
    import torch

    from dissect.engine import extract_unit_stats, iter_labeled_batches, place_model

    run = active_run(run_id, attempt)
    if run is None:
        return
    shard = run.shards.get(index=shard_index)
    params = run.parameters
    started = time.monotonic()
    net = network_load(network=run.network)
    items = _image_items(run, shard)
    reporter = StageProgress(
        run_id, "extract", params.get("n_images", 0), additive=True,
        label=f"extract shard {shard_index}", bar_total=len(items),
    )  # fmt: skip
    batch_size = int(params.get("batch_size", 32))
    try:
        device = place_model(net, params.get("device", "auto"))  # once for the whole task
        DissectionRun.objects.filter(pk=run_id).update(device=str(device))

        def on_failure(failed) -> None:
            reason = failed.reason.replace(f"{run.image_set.root}/", "")
            image_mark_bad(image_id=failed.image_id, reason=reason)

        spec, loader, tally = None, None, {"labeled": 0, "without_labels": 0, "resized": 0,
                                           "label_errors": 0, "note": ""}  # fmt: skip
        if auto_labels_on(run):
            from dissect.autolabel import AutoLabelError, run_labels

            try:
                labels = run_labels(run, items, net.preprocessing, params.get("iou_px"))
            except AutoLabelError as exc:
                raise PipelineError(str(exc)) from exc
            window = iou_windows(run, net, device, on_failure=on_failure)
            spec = labels.spec(
                quantile=float(params.get("quantile", DEFAULTS["quantile"])),
                denominator=params.get("iou_denominator", "plain"),
                window_thresholds={a: torch.tensor(v) for a, v in window.items()},
                below_fraction=IOU_BELOW_FRACTION,
            )
            loader = labels.loader

        def on_label_note(image_id: int, text: str) -> None:
            key = "resized" if text.startswith("label maps ") else "label_errors"
            tally[key] += 1
            if not tally["note"]:
                tally["note"] = text.replace(f"{run.image_set.root}/", "")
                logger.warning("run %s shard %s: %s", run_id, shard_index, tally["note"])

        def counted(batches):
            for batch in batches:
                present = int(batch[3].sum())
                tally["labeled"] += present
                tally["without_labels"] += int(batch[3].numel()) - present
                yield batch

        batches = iter_labeled_batches(
            items, net.preprocessing, loader, batch_size=batch_size,
            workers=int(params.get("workers", 0)), on_failure=on_failure,
            on_label_note=on_label_note,
        )  # fmt: skip
        stats = extract_unit_stats(
            net, run.layers, counted(batches), top_k=params["top_k"],
            controls=max(params.get("controls", 0), 1), device=device, progress=reporter,
            total=len(items), keep_maps=True, labels=spec, restore_device=False,
        )  # fmt: skip
    except torch.cuda.OutOfMemoryError as exc:
        reporter.close()
        raise PipelineError(
            f"run {run_id} shard {shard_index}: the GPU ran out of memory at batch size "
            f"{batch_size}; lower it (e.g. --batch-size {max(1, batch_size // 2)}) and resume with "
            f"`python manage.py dissect --resume {run_id} --batch-size {max(1, batch_size // 2)}`"
        ) from exc
    except BaseException:
        reporter.close()
        raise
    if spec is None:
        tally = None
    # One object per shard, each written whole (atomic rename on disk, one PUT on S3): a killed
    # worker never leaves half a state. The tally first: a stored state means a complete shard.
    labels_name = shard_labels_path(run_id, shard_index)
    if tally is not None:
        artifacts.text_save(labels_name, json.dumps(tally))
    else:
        artifacts.artifact_delete(labels_name)
    path = artifacts.torch_save(
        shard_state_path(run_id, shard_index),
        {alias: s.state_dict() for alias, s in stats.items()},
    )
    seconds = time.monotonic() - started
    Shard.objects.filter(pk=shard.pk).update(
        status=Shard.Status.DONE,
        state_path=str(path),
        worker=socket.gethostname()[:200],
        seconds=seconds,
        finished_at=timezone.now(),
    )
    reporter.close(done=len(items))
    timing_add(run_id, "extract", seconds)


def load_shard_stats(name: str) -> dict:
    """{layer alias: UnitStats} of one stored shard state (or the merged state), by artifact
    name; ``artifacts.ArtifactCorrupt`` / ``ArtifactMissing`` when it cannot be read."""
    from dissect.engine.extract import UnitStats

    state = artifacts.torch_load(name)
    return {alias: UnitStats.from_state_dict(s) for alias, s in state.items()}


def _shard_states(run_id: int, shards) -> Iterable[dict]:
    """Each shard's stored state; a missing or unreadable one is never merged: the shard is set
    back to pending (its object dropped) and the merge fails, so a resume computes it again."""
    for shard in shards:
        try:
            yield load_shard_stats(shard.state_path)
        except (artifacts.ArtifactCorrupt, artifacts.ArtifactMissing) as exc:
            artifacts.artifact_delete(shard.state_path)
            Shard.objects.filter(pk=shard.pk).update(status=Shard.Status.PENDING, state_path="")
            raise PipelineError(
                f"run {run_id}: shard {shard.index}'s stored state cannot be read ({exc}); it "
                f"will be computed again: resume with `python manage.py dissect --resume {run_id}`"
            ) from exc


def merge_stats(states: Iterable[dict]) -> dict:
    """Fold per-shard {alias: UnitStats} dicts into one (associative: any order, any grouping)."""
    merged: dict = {}
    for state in states:
        for alias, stats in state.items():
            if alias in merged:
                merged[alias].merge(stats)
            else:
                merged[alias] = stats
    return merged


def run_merge(*, run_id: int, attempt: int | None = None) -> None:
    """Combine the stored shard states and write Layer, Unit (threshold, top score) and
    UnitImage rows (top-K and controls with scores and argmax positions)."""

    from dissect.networks import theoretical_receptive_fields

    run = active_run(run_id, attempt)
    if run is None:
        return
    stage_set(run_id, "merge")
    started = time.monotonic()
    shards = list(run.shards.order_by("index"))
    missing = [s.index for s in shards if s.status != Shard.Status.DONE or not s.state_path]
    if missing:
        raise PipelineError(
            f"run {run_id}: shards {missing[:10]} have no stored state; "
            f"resume the run with `python manage.py dissect --resume {run_id}`"
        )
    progress_set(
        run_id, "merge", done=0, total=len(shards) + len(run.layers),
        counting=f"{len(shards)} shard(s) read + {len(run.layers)} layer(s) written",
    )  # fmt: skip
    merged = merge_stats(_shard_states(run_id, shards))
    artifacts.torch_save(
        artifacts.merged_state_name(run_id), {a: s.state_dict() for a, s in merged.items()}
    )
    progress_set(run_id, "merge", done=len(shards))

    net = network_load(network=run.network)
    rfs = theoretical_receptive_fields(net, run.layers)
    q = float(run.parameters.get("quantile", DEFAULTS["quantile"]))
    controls = int(run.parameters.get("controls", 0))
    for order, alias in enumerate(run.layers):
        stats = merged.get(alias)
        if stats is None:
            continue  # no image made it through (all bad): nothing to record
        with transaction.atomic():
            _layer_write(run, order, alias, stats, rfs.get(alias, (None, None))[0], q, controls)
        progress_set(run_id, "merge", add=1)
    timing_add(run_id, "merge", time.monotonic() - started)
    if any(stats.iou is not None for stats in merged.values()):
        _auto_labels_from_counts(run, merged, q, shards)
    tiles = UnitImage.objects.filter(unit__layer__run=run).count()
    progress_set(run_id, "render", done=0, total=tiles)  # the render parts add to it


def _auto_labels_from_counts(run: DissectionRun, merged: dict, q: float, shards) -> None:
    """The automatic labels from the merged IoU counts, read at the very thresholds the Unit rows
    got (``threshold(q)``): AutoLabel rows, the counts CSV, and the run's label tally under
    ``progress["auto_label"]`` (images counted, images without label maps, maps resized)."""
    from django.db import transaction as _tx

    from dissect.autolabel import AutoLabelError, auto_labels_write, run_label_dataset

    started = time.monotonic()
    stage_set(run.pk, "auto_label")
    try:
        dataset = run_label_dataset(run)
    except AutoLabelError as exc:
        raise PipelineError(str(exc)) from exc
    counts = {
        alias: stats.iou_counts(q)
        for alias, stats in merged.items()
        if stats.iou is not None and stats.iou.n_images
    }
    tally = {"labeled": 0, "without_labels": 0, "resized": 0, "label_errors": 0, "note": ""}
    for shard in shards:
        text = artifacts.text_read(shard_labels_path(run.pk, shard.index))
        if text is not None:
            part = json.loads(text)
            for key in ("labeled", "without_labels", "resized", "label_errors"):
                tally[key] += int(part.get(key, 0))
            tally["note"] = tally["note"] or part.get("note", "")
    if not counts:
        if run.parameters.get("auto_labels") is not True:
            logger.warning("run %s: no image has label maps; no automatic labels", run.pk)
            return
        raise PipelineError(
            f"run {run.pk}: none of its images has label maps in {dataset.root / 'index.csv'}; "
            "dissect the imported Broden image set, or turn auto labels off (--no-auto-labels)"
        )
    auto_labels_write(run, counts, dataset)
    inexact = sum(int((~c.exact).sum()) for c in counts.values())
    max_error = max(c.max_error for c in counts.values())
    tally.update(inexact_units=inexact, max_iou_error=round(max_error, 6))
    for key, text in (
        ("without_labels", "image(s) without label maps: counted for top-K and quantiles, not IoU"),
        ("resized", "image(s) with label maps of another size, resized (nearest)"),
        ("label_errors", "image(s) whose label maps could not be read: not counted for IoU"),
        ("inexact_units", f"unit(s) whose threshold fell outside the IoU window: IoU within "
                          f"{max_error:.4f}"),
    ):  # fmt: skip
        if tally[key]:
            logger.warning("run %s: %d %s", run.pk, tally[key], text)
    with _tx.atomic():
        row = DissectionRun.objects.select_for_update().only("progress").get(pk=run.pk)
        entry = {"done": tally["labeled"], "total": tally["labeled"], **tally}
        DissectionRun.objects.filter(pk=run.pk).update(
            progress={**row.progress, "auto_label": entry}
        )
    timing_add(run.pk, "auto_label", time.monotonic() - started)


def _layer_write(run, order, alias, stats, rf_px, q, controls) -> None:
    layer, _ = Layer.objects.update_or_create(
        run=run,
        name=alias,
        defaults={
            "module_path": stats.module_path,
            "order": order,
            "unit_count": stats.num_units,
            "output_shape": [stats.num_units, *stats.map_shape],
            "theoretical_rf_px": rf_px,
        },
    )
    thresholds = stats.threshold(q).tolist()
    top_scores = stats.top.scores[:, 0].tolist() if stats.top.scores.shape[1] else []
    existing = {u.index: u for u in layer.units.all()}
    units = []
    for index in range(stats.num_units):
        unit = existing.get(index) or Unit(layer=layer, index=index)
        unit.threshold = _finite(thresholds[index])
        unit.top_score = _finite(top_scores[index]) if top_scores else None
        units.append(unit)
    Unit.objects.bulk_create([u for u in units if u.pk is None], batch_size=1000)
    Unit.objects.bulk_update([u for u in units if u.pk], ["threshold", "top_score"], 1000)
    unit_ids = dict(layer.units.values_list("index", "id"))
    # Re-merging replaces the lists (same shards give the same rows); tiles follow in render.
    UnitImage.objects.filter(unit__layer=layer).delete()
    rows = []
    for kind, topk, keep in (
        (UnitImage.Kind.TOP, stats.top, stats.top.scores.shape[1]),
        (UnitImage.Kind.CONTROL, stats.controls, min(controls, stats.controls.scores.shape[1])),
    ):
        scores, ids, pos = topk.scores.tolist(), topk.image_ids.tolist(), topk.positions.tolist()
        for index in range(stats.num_units):
            for rank in range(keep):
                rows.append(
                    UnitImage(
                        unit_id=unit_ids[index],
                        image_id=ids[index][rank],
                        kind=kind,
                        rank=rank,
                        score=_finite(scores[index][rank]) or 0.0,
                        argmax_y=pos[index][rank][0],
                        argmax_x=pos[index][rank][1],
                    )
                )
    if controls:
        rows = _drop_controls_in_top(rows)
    UnitImage.objects.bulk_create(rows, batch_size=2000)


def _drop_controls_in_top(rows: list[UnitImage]) -> list[UnitImage]:
    """With fewer images than K + controls, a control can also be a top image; a planted
    negative must not be one of the unit's own top images, so drop it."""
    tops = {(r.unit_id, r.image_id) for r in rows if r.kind == UnitImage.Kind.TOP}
    kept, next_rank = [], defaultdict(int)
    for r in rows:
        if r.kind == UnitImage.Kind.CONTROL:
            if (r.unit_id, r.image_id) in tops:
                continue
            r.rank = next_rank[r.unit_id]
            next_rank[r.unit_id] += 1
        kept.append(r)
    return kept


def _finite(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return float(value)


def run_receptive_field(*, run_id: int, layer_name: str, attempt: int | None = None) -> None:
    """Empirical receptive field of one layer by occlusion (the engine's
    ``estimate_receptive_fields``) over each unit's first ``rf_images`` top images: RF size per
    unit and the layer's mean and std; each unit's RF map is saved to media storage."""
    from dissect.engine.receptive_field import estimate_receptive_fields, heatmap_image
    from dissect.images import load_rgb, preprocess_transform

    run = active_run(run_id, attempt)
    if run is None:
        return
    stage_set(run_id, "receptive_field")
    started = time.monotonic()
    params = run.parameters
    layer = run.layer_set.get(name=layer_name)
    net = network_load(network=run.network)
    top_n = int(params.get("rf_images", 5))
    unit_images: dict[int, list[int]] = defaultdict(list)
    for unit_index, image_id in UnitImage.objects.filter(
        unit__layer=layer, kind=UnitImage.Kind.TOP, rank__lt=top_n
    ).values_list("unit__index", "image_id"):
        unit_images[unit_index].append(image_id)
    ids = {i for image_ids in unit_images.values() for i in image_ids}
    root = Path(run.image_set.root)
    paths = dict(Image.objects.filter(id__in=ids).values_list("id", "path"))
    transform = preprocess_transform(net.preprocessing)
    reporter = StageProgress(
        run_id, f"receptive_field {layer_name}", len(ids), label=f"rf {layer_name}"
    )
    result = estimate_receptive_fields(
        net,
        layer_name,
        unit_images,
        lambda image_id: transform(load_rgb(root / paths[image_id])),
        patch_px=int(params.get("rf_patch_px", 11)),
        stride_px=int(params.get("rf_stride_px", 3)),
        seed=run.seed,
        device=params.get("device", "auto"),
        progress=reporter,
    )
    reporter.close(done=len(ids))
    by_index = {u.unit: u for u in result.units}
    units = list(layer.units.filter(index__in=list(by_index)))
    for unit in units:
        unit_rf = by_index[unit.index]
        unit.rf_size_px = _finite(unit_rf.rf_px) if unit_rf.n_images else None
        if unit_rf.n_images and unit_rf.heatmap.numel():
            image = heatmap_image(unit_rf, size_px=int(params.get("tile_px", 120)))
            unit.rf_map_path = save_content_addressed(png_bytes(image), kind="rf", ext="png")
    Unit.objects.bulk_update(units, ["rf_size_px", "rf_map_path"], 1000)
    layer.empirical_rf_mean_px = _finite(result.mean_px)
    layer.empirical_rf_std_px = _finite(result.std_px)
    layer.save(update_fields=["empirical_rf_mean_px", "empirical_rf_std_px"])
    timing_add(run_id, f"receptive_field {layer_name}", time.monotonic() - started)
