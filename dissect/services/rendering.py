"""Rendering: each top image's tile segmented by the unit's mask (in parts), and one montage
per unit."""

from __future__ import annotations

import contextlib
import io
import os
import threading
import time
from collections import OrderedDict, defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from django.db import transaction
from django.db.models import F

from dissect.models import DissectionRun, Image, Layer, Unit, UnitImage
from dissect.run_progress import StageProgress, stage_set, timing_add
from dissect.services.common import (
    DEFAULTS,
    PipelineError,
    Progress,
    active_run,
    jpeg_bytes,
)
from dissect.services.image_sets import image_mark_bad
from dissect.services.networks import network_load
from dissect.storage import media_read, save_content_addressed

RENDER_MAX_PARTS = 8
# Threads that encode and write tiles (and compose montages) beside the masks: encoding releases
# the GIL, and on an object store each write waits on a request, so several are in flight.
WRITE_THREADS = 4
# Top tiles' bytes by name, as the render parts in this process wrote them, so the montages after
# them are composed without reading the tiles back from the store. A name is the sha256 of its
# bytes, so an entry is never stale; oldest first out past the bound; what is not here (a part
# rendered by another worker) is read from storage.
RENDERED_KEEP_BYTES = 192 * 1024 * 1024
_rendered: OrderedDict[str, bytes] = OrderedDict()
_rendered_size = [0]
_rendered_lock = threading.Lock()


_pool: list = [None, 0]  # this process's writer threads, and the process they belong to
_pool_lock = threading.Lock()


def _write_pool() -> ThreadPoolExecutor:
    """This process's writer threads, kept across render parts and montages: each thread's
    store connection (a boto3 session, about half a second of CPU to build) is made once per
    process, not once per task. A forked child builds its own (threads do not survive a fork)."""
    with _pool_lock:
        if _pool[0] is None or _pool[1] != os.getpid():
            _pool[:] = [ThreadPoolExecutor(WRITE_THREADS, thread_name_prefix="media"), os.getpid()]
        return _pool[0]


def _rendered_keep(name: str, data: bytes) -> None:
    with _rendered_lock:
        if name in _rendered:
            return
        _rendered[name] = data
        _rendered_size[0] += len(data)
        while _rendered_size[0] > RENDERED_KEEP_BYTES:
            _rendered_size[0] -= len(_rendered.popitem(last=False)[1])


def _rendered_drop(names) -> None:
    with _rendered_lock:
        for name in names:
            data = _rendered.pop(name, None)
            if data is not None:
                _rendered_size[0] -= len(data)


def _tile_bytes(name: str) -> bytes:
    """A top tile's bytes: kept from this process's render, else read from storage."""
    with _rendered_lock:
        data = _rendered.get(name)
    return data if data is not None else media_read(name)


def _mask_params(recipe: str, layer: Layer, unit: Unit, input_size: int) -> dict:
    """The recipe's parameters for one unit: the quantile level, or the RF diameter (empirical
    when measured, else the theoretical RF: an over-estimate, see docs/pipeline.md)."""
    if recipe == "quantile":
        return {"level": unit.threshold if unit.threshold is not None else 0.0}
    if recipe == "activation":
        return {"threshold": 0.2}
    diameter = unit.rf_size_px or layer.empirical_rf_mean_px or layer.theoretical_rf_px
    return {"rf_diameter_px": float(diameter or input_size), "input_size": input_size}


def _view_images(x, preprocessing: dict) -> list:
    """Undo normalization: the RGB network views (PIL) of a preprocessed batch."""
    import torch
    from PIL import Image as PILImage

    mean = torch.tensor(preprocessing["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(preprocessing["std"]).view(1, 3, 1, 1)
    pixels = ((x * std + mean).clamp(0, 1) * 255 + 0.5).to(torch.uint8).permute(0, 2, 3, 1)
    return [PILImage.fromarray(p.numpy(), "RGB") for p in pixels]


def render_parts(run: DissectionRun) -> int:
    """How many tasks render a run's tiles side by side: one per shard, at most RENDER_MAX_PARTS."""
    return max(1, min(RENDER_MAX_PARTS, run.shards.count()))


def stored_maps(run_id: int) -> dict | None:
    """{layer: {(unit index, image id): map [h, w]}} of every unit's top-K and control images
    (the kept float16 maps, as float32), from the run's merged state (kept by the one pass);
    None for runs merged from states without maps (before one-pass extraction), which render
    by re-running the network."""
    from dissect import artifacts

    try:
        state = artifacts.torch_load(artifacts.merged_state_name(run_id))
    except artifacts.ArtifactMissing:
        return None
    out = {}
    for alias, layer_state in state.items():
        lists = [layer_state[kind] for kind in ("top", "controls")]
        if any(topk.get("maps") is None for topk in lists):
            return None
        maps = {}
        for topk in lists:
            ids = topk["image_ids"].tolist()
            layer_maps = topk["maps"].float()  # once per layer, not once per tile
            for unit, row in enumerate(ids):
                for rank, image_id in enumerate(row):
                    if image_id >= 0:
                        maps[(unit, image_id)] = layer_maps[unit, rank]
        out[alias] = maps
    return out


def run_render(
    *,
    run_id: int,
    attempt: int | None = None,
    part: int = 0,
    parts: int = 1,
    progress: Progress | None = None,
) -> int:
    """Decode only the images in some unit's lists (each once), take each unit's activation map
    on it from the merged state (stored by the one pass: no forward pass; runs merged without
    maps re-run the network on these images, all layers at once), build the unit's mask with the
    run's recipe and write its tiles to media storage (content-addressed). ``part`` of
    ``parts`` takes the images whose id modulo ``parts`` is ``part``, so several workers can
    render one run. Returns the number of tiles written."""
    import torch

    from dissect.engine.extract import place_model
    from dissect.engine.segment import make_masks, tile_layers
    from dissect.images import iter_image_batches
    from dissect.networks import resolve_layers
    from dissect.networks.layers import capture_outputs, run_until_captured

    run = active_run(run_id, attempt)
    if run is None:
        return 0
    stage_set(run_id, "render")
    started = time.monotonic()
    params = run.parameters
    recipe = params.get("segmentation", DEFAULTS["segmentation"])
    tile_px = int(params.get("tile_px", DEFAULTS["tile_px"]))
    net = network_load(network=run.network)
    input_size = net.input_size
    layers = {layer.name: layer for layer in run.layer_set.all()}
    units = {u.pk: u for u in Unit.objects.filter(layer__run=run).select_related("layer")}
    wanted: dict[int, list[UnitImage]] = defaultdict(list)
    mine = UnitImage.objects.alias(part=F("image_id") % parts).filter(part=part)
    for ui in mine.filter(unit__layer__run=run).order_by("id"):
        wanted[ui.image_id].append(ui)
    total = sum(len(v) for v in wanted.values())
    # The merge set the stage's total (every part's tiles); each part adds what it renders.
    label = "render tiles" if parts == 1 else f"render tiles {part + 1}/{parts}"
    reporter = StageProgress(run_id, "render", total, additive=True, label=label, unit="tile")
    root = Path(run.image_set.root)
    items = [
        (image_id, str(root / path))
        for image_id, path in Image.objects.filter(id__in=list(wanted))
        .order_by("id")
        .values_list("id", "path")
    ]
    stored = stored_maps(run_id)
    forward = contextlib.nullcontext({})
    if stored is None:
        dev = place_model(net, params.get("device", "auto"))
        forward = capture_outputs(resolve_layers(net, list(layers)), stop_early=True)
    done, writes = 0, []
    pool = _write_pool()

    def on_failure(failed) -> None:
        image_mark_bad(image_id=failed.image_id, reason=failed.reason)

    try:
        with torch.inference_mode(), forward as captured:
            for image_ids, decoded in iter_image_batches(
                items,
                net.preprocessing,
                batch_size=params.get("batch_size", 32),
                workers=params.get("workers", 0),
                on_failure=on_failure,
                views=stored is not None,  # stored maps: only the views, no tensor, no forward
            ):
                if stored is None:
                    run_until_captured(net.model, decoded.to(dev), captured)
                    maps = {alias: out.float().cpu() for alias, out in captured.items()}
                    views = _view_images(decoded, net.preprocessing)
                    image_ids = image_ids.tolist()
                else:
                    views = decoded
                # Each view and its dimmed copy once: every tile of the image is one select.
                layers = [tile_layers(view) for view in views]
                tiles, amaps, mask_params = [], [], []  # (UnitImage, view's layers) per tile
                for row, image_id in enumerate(image_ids):
                    for ui in wanted[image_id]:
                        unit = units[ui.unit_id]
                        if stored is None:
                            amap = maps[unit.layer.name][row, unit.index]
                        else:
                            amap = _stored_map(stored, run_id, unit, image_id)
                        if amap.dim() == 0:  # a vector layer's unit: one cell
                            amap = amap.view(1, 1)
                        tiles.append((ui, layers[row]))
                        amaps.append(amap)
                        mask_params.append(_mask_params(recipe, unit.layer, unit, input_size))
                    done += len(wanted[image_id])
                if tiles:
                    # The views of one batch share their size: all its masks in one call.
                    masks = make_masks(recipe, amaps, views[0].size, mask_params)
                    # Encoding and writing release the GIL: overlap them with the next batch.
                    for (ui, view_layers), mask in zip(tiles, masks, strict=True):
                        keep = ui.kind == UnitImage.Kind.TOP  # a montage tile
                        write = pool.submit(_tile_write, view_layers, mask, tile_px, keep=keep)
                        writes.append((ui.pk, write))
                _raise_failed(writes)
                if len(writes) >= 2000:
                    _tile_paths_store(writes)
                    writes = []
                reporter(done)
            _tile_paths_store(writes)
    except BaseException:
        for _unit_image_id, future in writes:  # the rest is not needed now
            future.cancel()
        raise
    reporter.close(done=done)
    timing_add(run_id, "render", time.monotonic() - started)
    if progress is not None:
        progress(done, total)
    return done


def _stored_map(stored: dict, run_id: int, unit: Unit, image_id: int):
    amap = stored.get(unit.layer.name, {}).get((unit.index, image_id))
    if amap is None:
        raise PipelineError(
            f"run {run_id}: the merged state has no map of unit {unit.layer.name}/{unit.index} "
            f"on image {image_id}; merge the run again (`python manage.py dissect --resume "
            f"{run_id}`)"
        )
    return amap


def run_montages(*, run_id: int, attempt: int | None = None) -> None:
    """One montage per unit from its stored tiles (after every render part)."""
    run = active_run(run_id, attempt)
    if run is None:
        return
    started = time.monotonic()
    tile_px = int(run.parameters.get("montage_tile_px", DEFAULTS["montage_tile_px"]))
    _montages_write(run, tile_px=tile_px)
    timing_add(run_id, "render", time.monotonic() - started)


def _tile_write(view_layers, mask, tile_px: int, *, keep: bool) -> str:
    from dissect.engine.segment import masked_tile

    data = jpeg_bytes(masked_tile(view_layers, mask, tile_px=tile_px))
    name = save_content_addressed(data, kind="tiles", ext="jpg")
    if keep:
        _rendered_keep(name, data)
    return name


def _raise_failed(writes: list) -> None:
    """A tile write that failed (the store is gone, after botocore's retries) stops the render
    now, with its error, rather than after every other tile has spent its retries too."""
    for _unit_image_id, future in writes:
        if future.done() and future.exception() is not None:
            future.result()


def _tile_paths_store(writes: list) -> None:
    """Store (UnitImage id, future of its tile name) pairs: one executemany, as bulk_update's
    CASE expression costs more than the tiles themselves for tens of thousands of rows."""
    from django.db import connection

    params = [(future.result(), unit_image_id) for unit_image_id, future in writes]
    table = connection.ops.quote_name(UnitImage._meta.db_table)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.executemany(f"UPDATE {table} SET tile_path = %s WHERE id = %s", params)


def _montages_write(run: DissectionRun, *, tile_px: int) -> None:
    """One montage per unit: its top tiles in rank order (the bytes this process rendered, else
    read from storage), several units at once."""
    from PIL import Image as PILImage

    from dissect.engine.segment import make_montage

    tiles_of: dict[int, list[str]] = defaultdict(list)
    for unit_id, path in (
        UnitImage.objects.filter(unit__layer__run=run, kind=UnitImage.Kind.TOP)
        .exclude(tile_path="")
        .order_by("unit_id", "rank")
        .values_list("unit_id", "tile_path")
    ):
        tiles_of[unit_id].append(path)

    def montage(names: list[str]) -> str:
        tiles = [
            PILImage.open(io.BytesIO(_tile_bytes(name))).convert("RGB").resize((tile_px, tile_px))
            for name in names
        ]
        return save_content_addressed(jpeg_bytes(make_montage(tiles)), kind="montages", ext="jpg")

    units = list(Unit.objects.filter(pk__in=list(tiles_of)))
    paths = _write_pool().map(lambda u: montage(tiles_of[u.pk]), units)
    for unit, path in zip(units, paths, strict=True):
        unit.montage_path = path
    Unit.objects.bulk_update(units, ["montage_path"], 1000)
    _rendered_drop(name for names in tiles_of.values() for name in names)
