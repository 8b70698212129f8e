"""Extraction (one shard at a time), the merge of shard states into rows, and the optional
empirical receptive field."""

from __future__ import annotations

import math
import os
import socket
import time
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

from django.db import transaction
from django.utils import timezone

from dissect.models import DissectionRun, Image, Layer, Shard, Unit, UnitImage
from dissect.run_progress import StageProgress, progress_set, stage_set, timing_add
from dissect.selectors import run_ordered_images
from dissect.services.common import DEFAULTS, PipelineError, active_run, png_bytes, run_dir
from dissect.services.image_sets import image_mark_bad
from dissect.services.networks import network_load
from dissect.storage import save_content_addressed


def shard_state_path(run_id: int, index: int) -> Path:
    return run_dir(run_id) / f"shard-{index:05d}.pt"


def _image_items(run: DissectionRun, shard: Shard) -> list[tuple[int, str]]:
    """(image id, absolute path) of the shard's usable images, in id order."""
    root = Path(run.image_set.root)
    bounds = run.parameters["shard_bounds"]
    rows = run_ordered_images(run=run).filter(
        id__gte=bounds[shard.index], id__lt=bounds[shard.index + 1]
    )
    return [(image_id, str(root / path)) for image_id, path in rows.values_list("id", "path")]


def shard_extract(*, run_id: int, shard_index: int, attempt: int | None = None) -> None:
    """Run the network over one shard's images and store its partial state (top-K, controls,
    quantile sketch per layer) as ``RUNS_DIR/<run>/shard-<index>.pt``. Idempotent: a re-run
    overwrites its own file. Files that fail to decode are marked bad and skipped."""
    import torch

    from dissect.engine.extract import extract_unit_stats
    from dissect.images import iter_image_batches

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
    from dissect.engine.extract import resolve_device

    device = str(resolve_device(params.get("device", "auto")))
    DissectionRun.objects.filter(pk=run_id).update(device=device)

    def on_failure(failed) -> None:
        reason = failed.reason.replace(f"{run.image_set.root}/", "")
        image_mark_bad(image_id=failed.image_id, reason=reason)

    batches = iter_image_batches(
        items,
        net.preprocessing,
        batch_size=params.get("batch_size", 32),
        workers=params.get("workers", 0),
        on_failure=on_failure,
    )
    try:
        stats = extract_unit_stats(
            net,
            run.layers,
            batches,
            top_k=params["top_k"],
            controls=max(params.get("controls", 0), 1),
            device=device,
            progress=reporter,
            total=len(items),
        )
    except BaseException:
        reporter.close()
        raise
    path = shard_state_path(run_id, shard_index)
    tmp = path.with_suffix(".tmp")
    # One file per shard, written atomically: a killed worker never leaves half a state.
    torch.save({alias: s.state_dict() for alias, s in stats.items()}, tmp)
    os.replace(tmp, path)
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


def load_shard_stats(path: str | Path) -> dict:
    """{layer alias: UnitStats} of one stored shard state (or the merged state)."""
    import torch

    from dissect.engine.extract import UnitStats

    state = torch.load(Path(path), map_location="cpu", weights_only=True)
    return {alias: UnitStats.from_state_dict(s) for alias, s in state.items()}


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
    import torch

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
    progress_set(run_id, "merge", done=0, total=len(shards) + len(run.layers))
    merged = merge_stats(load_shard_stats(s.state_path) for s in shards)
    torch.save({a: s.state_dict() for a, s in merged.items()}, run_dir(run_id) / "merged.pt")
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
    tiles = UnitImage.objects.filter(unit__layer__run=run).count()
    progress_set(run_id, "render", done=0, total=tiles)  # the render parts add to it


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
