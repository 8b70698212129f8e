"""Writes of the dissection pipeline: networks, image sets, runs, shards, merge, render, resume,
cancel, and the README's demo runs.

The numeric work is the engine's (``dissect.engine``, ``dissect.networks``, ``dissect.images``);
this module turns it into rows and files and keeps every run's status row current. torch is only
imported inside the functions that compute, so the web process can import this module.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import math
import os
import socket
import subprocess
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from dissect.models import (
    DissectionRun,
    Image,
    ImageSet,
    Layer,
    Network,
    Shard,
    Unit,
    UnitImage,
)
from dissect.run_progress import (
    StageProgress,
    progress_set,
    show_bars,
    stage_set,
    timing_add,
)
from dissect.selectors import run_ordered_images
from dissect.storage import save_content_addressed

logger = logging.getLogger(__name__)

Progress = Callable[[int, int], None]

SEGMENTATIONS = ("rf-disk", "activation", "quantile")
DEVICES = ("auto", "cpu", "cuda")
DEFAULTS = {
    "top_k": 60,
    "controls": 3,
    "shard_size": 1000,
    "segmentation": "quantile",
    "quantile": 0.995,
    "tile_px": 120,
    "montage_tile_px": 64,
    "batch_size": 32,
    "workers": 0,
    "receptive_field": False,
    "device": "auto",
    # Empirical receptive field: top images per unit, occluder side and grid stride (paper: 11, 3).
    "rf_images": 5,
    "rf_patch_px": 11,
    "rf_stride_px": 3,
}
# Advanced parameters (``run_create(options=...)``), each with its type and allowed range.
# auto_labels: the optional automatic-label stage (dissect.explain.tasks.auto_label_run).
OPTION_RANGES: dict[str, tuple[type, float | None, float | None]] = {
    "quantile": (float, 0.0, 1.0),  # strictly between: the unit threshold's activation quantile
    "montage_tile_px": (int, 16, 512),
    "rf_images": (int, 1, 100),
    "rf_patch_px": (int, 1, None),
    "rf_stride_px": (int, 1, None),
    "auto_labels": (bool, None, None),
}
SCAN_CHUNK = 2000
RENDER_MAX_PARTS = 8


class PipelineError(ValueError):
    """A request the pipeline cannot carry out; the message says what to change."""


# -- small helpers ------------------------------------------------------------------------------


def code_version() -> str:
    """``git describe`` of the checkout when available, else the installed package version."""
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--tags"],
            cwd=settings.BASE_DIR,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
        if out.stdout.strip():
            return out.stdout.strip()[:64]
    except (OSError, subprocess.SubprocessError):
        pass
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("crowddissect")
    except PackageNotFoundError:
        return "unknown"


def run_dir(run_id: int) -> Path:
    """Folder of a run's artifacts (shard states, merged state, receptive-field maps)."""
    path = Path(settings.CROWDDISSECT["RUNS_DIR"]) / str(run_id)
    path.mkdir(parents=True, exist_ok=True)
    return path


# -- networks -----------------------------------------------------------------------------------


def network_register(
    *,
    name: str,
    arch: str,
    checkpoint: str | Path | None = None,
    class_names: str | Path | Sequence[str] | None = None,
    trust_pickle: bool = False,
    preprocessing: dict | None = None,
    training_data: str = "",
    description: str = "",
) -> Network:
    """Load the network once (to check that the checkpoint fits the architecture) and store it
    as a Network row (created, or updated when ``name`` exists). ``preprocessing`` overrides
    the architecture's defaults (e.g. ``{"input_size": 64}``). Raises PipelineError."""
    from dissect.networks import DEMO_NETWORKS, NetworkLoadError, load_network

    if checkpoint is not None and not Path(checkpoint).is_file():
        raise PipelineError(f"checkpoint {checkpoint}: no such file")
    try:
        net = load_network(
            arch,
            checkpoint=checkpoint,
            class_names=class_names,
            trust_pickle=trust_pickle,
            preprocessing=preprocessing,
        )
    except NetworkLoadError as exc:
        raise PipelineError(str(exc)) from exc
    if arch in DEMO_NETWORKS:
        source = Network.Source.BUILTIN
    elif checkpoint is None:
        source = Network.Source.TORCHVISION
    elif trust_pickle:
        source = Network.Source.PICKLE
    else:
        source = Network.Source.TORCHVISION
    network, _ = Network.objects.update_or_create(
        name=name,
        defaults={
            "arch": arch,
            "source": source,
            "checkpoint_path": str(Path(checkpoint).resolve()) if checkpoint else "",
            # Without a checkpoint a torchvision net is randomly initialized on every load:
            # there is no fixed weights file to identify.
            "weights_sha256": net.weights_sha256
            if checkpoint or source == Network.Source.BUILTIN
            else "",
            "class_names": list(net.class_names),
            "preprocessing": dict(net.preprocessing),
            "layer_aliases": dict(net.layer_aliases),
            "trust_pickle": trust_pickle,
            "training_data": training_data,
            "description": description,
        },
    )
    return network


_NET_CACHE: dict[tuple, object] = {}


def network_load(*, network: Network):
    """The network's ``LoadedNetwork`` (cached per process: a worker runs many shards).

    Raises PipelineError when the checkpoint changed since registration.
    """
    from dissect.networks import NetworkLoadError, load_network

    key = (network.pk, network.arch, network.checkpoint_path, network.weights_sha256)
    if key in _NET_CACHE:
        return _NET_CACHE[key]
    try:
        net = load_network(
            network.arch,
            checkpoint=network.checkpoint_path or None,
            class_names=network.class_names or None,
            trust_pickle=network.trust_pickle,
            preprocessing=network.preprocessing or None,
        )
    except NetworkLoadError as exc:
        raise PipelineError(f"network {network.name}: {exc}") from exc
    if network.weights_sha256 and net.weights_sha256 != network.weights_sha256:
        raise PipelineError(
            f"network {network.name}: the weights changed since it was registered "
            f"({network.checkpoint_path or network.arch}); register it again with "
            "`python manage.py register_network`"
        )
    _NET_CACHE.clear()  # one network at a time: models can be large
    _NET_CACHE[key] = net
    return net


# -- image sets ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Scanned:
    path: str
    ok: bool
    reason: str
    width: int
    height: int
    sha1: str
    size_bytes: int
    scene_label: str = ""
    split: str = ""


def _count_image_files(root: Path) -> int:
    from dissect.images import IMAGE_EXTENSIONS

    return sum(
        1
        for _dir, _subdirs, files in os.walk(root)
        for name in files
        if name.lower().endswith(IMAGE_EXTENSIONS)
    )


def _scan_records(root: Path, manifest: Path | None) -> tuple[int, Iterable[_Scanned]]:
    """(total, records) for a folder walk or a CSV manifest (paths relative to root)."""
    from dissect.images import ManifestError, inspect_image, read_manifest_csv, scan_folder

    def relative(reason: str) -> str:
        # The engine names the absolute file; the run page lists paths relative to the root.
        return reason.replace(f"{root}/", "", 1)

    if manifest is None:
        total = _count_image_files(root)

        def folder():
            for record in scan_folder(root):
                c = record.check
                yield _Scanned(
                    record.relpath, c.ok, relative(c.reason), c.width, c.height, c.sha1,
                    c.size_bytes,
                )  # fmt: skip

        return total, folder()
    try:
        rows = list(read_manifest_csv(manifest))
    except ManifestError as exc:
        raise PipelineError(str(exc)) from exc

    def listed():
        for row in rows:
            file = root / row.path
            if not file.is_file():
                yield _Scanned(
                    row.path, False, f"{row.path}: listed in {manifest.name} line {row.line} "
                    "but no such file", 0, 0, "", 0,
                )  # fmt: skip
                continue
            c = inspect_image(file)
            label = row.extra.get("label") or row.extra.get("class") or row.extra.get("scene", "")
            yield _Scanned(
                row.path, c.ok, relative(c.reason), c.width, c.height, c.sha1, c.size_bytes,
                label[:100], row.extra.get("split", "")[:20],
            )  # fmt: skip

    return len(rows), listed()


def image_set_scan(
    *,
    name: str,
    root: str | Path,
    manifest: str | Path | None = None,
    labels_dir: str | Path = "",
    description: str = "",
    progress: Progress | None = None,
    chunk_size: int = SCAN_CHUNK,
) -> ImageSet:
    """Scan ``root`` recursively (jpg, png, webp, bmp) or the files a CSV ``manifest`` lists
    (column ``path`` relative to ``root``; optional ``label``/``split``) into Image rows.

    Bad files (empty, truncated, not an image, too many pixels, missing) are kept with
    status 'bad' and the reason, and skipped by runs. Rescanning an existing set updates rows
    in place (paths that vanished are removed), so runs keep their images. Rows are written in
    chunks of ``chunk_size``; ``progress(done, total)`` after each chunk.
    """
    root = Path(root).expanduser().resolve()
    if not root.is_dir():
        raise PipelineError(f"image folder {root}: no such folder")
    manifest_path = Path(manifest).expanduser().resolve() if manifest else None
    if manifest_path is not None and not manifest_path.is_file():
        raise PipelineError(f"manifest {manifest_path}: no such file")
    total, records = _scan_records(root, manifest_path)

    image_set, _ = ImageSet.objects.update_or_create(
        name=name,
        defaults={"root": str(root), "labels_dir": str(labels_dir), "description": description},
    )
    fields = ["sha1", "size_bytes", "width", "height", "status", "reason", "scene_label", "split"]
    # path -> (id, stored values): a rescan rewrites only the rows whose file changed.
    existing = {
        row[0]: (row[1], row[2:])
        for row in image_set.images.values_list("path", "id", *fields).iterator(chunk_size=5000)
    }
    seen: set[str] = set()
    bar = None
    if progress is None and show_bars():
        from tqdm import tqdm

        bar = tqdm(total=total, desc=f"scan {name}", unit="file", leave=False)

    def flush(chunk: list[_Scanned]) -> None:
        rows = [
            Image(
                id=existing[r.path][0] if r.path in existing else None,
                image_set=image_set,
                path=r.path[:500],
                sha1=r.sha1,
                size_bytes=r.size_bytes,
                width=r.width,
                height=r.height,
                status=Image.Status.OK if r.ok else Image.Status.BAD,
                reason="" if r.ok else (r.reason or "unreadable")[:300],
                scene_label=r.scene_label,
                split=r.split,
            )
            for r in chunk
        ]
        # Split before writing: bulk_create fills in ids, and new rows need no update.
        new = [r for r in rows if r.id is None]
        known = [
            r
            for r in rows
            if r.id is not None and tuple(getattr(r, f) for f in fields) != existing[r.path][1]
        ]
        with transaction.atomic():
            Image.objects.bulk_create(new, batch_size=chunk_size)
            if known:
                Image.objects.bulk_update(known, fields, batch_size=500)

    done, chunk = 0, []
    for record in records:
        if record.path in seen:
            continue
        seen.add(record.path)
        chunk.append(record)
        if len(chunk) >= chunk_size:
            flush(chunk)
            done += len(chunk)
            chunk = []
            if progress is not None:
                progress(done, total)
            if bar is not None:
                bar.update(done - bar.n)
    if chunk:
        flush(chunk)
        done += len(chunk)
    if bar is not None:
        bar.close()
    if progress is not None:
        progress(done, max(total, done))

    gone = [image_id for path, (image_id, _values) in existing.items() if path not in seen]
    for start in range(0, len(gone), chunk_size):
        Image.objects.filter(id__in=gone[start : start + chunk_size]).delete()
    return image_set_refresh_summary(image_set=image_set)


def image_set_refresh_summary(*, image_set: ImageSet) -> ImageSet:
    """Recount ok/bad images and recompute ``manifest_sha256`` = sha256 of the sorted
    ``path<TAB>sha1`` lines of the usable images (the set's identity)."""
    digest = hashlib.sha256()
    ok = image_set.images.filter(status=Image.Status.OK).order_by("path")
    for path, sha1 in ok.values_list("path", "sha1").iterator(chunk_size=SCAN_CHUNK):
        digest.update(f"{path}\t{sha1}\n".encode())
    image_set.image_count = ok.count()
    image_set.bad_count = image_set.images.filter(status=Image.Status.BAD).count()
    image_set.manifest_sha256 = digest.hexdigest()
    image_set.save(update_fields=["image_count", "bad_count", "manifest_sha256"])
    return image_set


def _image_mark_bad(*, image_id: int, reason: str) -> None:
    """A file that scanned fine but failed to decode during a run: skip it from now on."""
    Image.objects.filter(pk=image_id).update(status=Image.Status.BAD, reason=reason[:300] or "bad")


# -- runs: create, start, cancel, resume ---------------------------------------------------------


def options_clean(options: dict) -> dict:
    """``options`` checked against OPTION_RANGES and converted to their types; raises
    PipelineError naming the first unknown or out-of-range option."""
    unknown = sorted(set(options) - set(OPTION_RANGES))
    if unknown:
        raise PipelineError(
            f"unknown option(s) {', '.join(unknown)}: use {', '.join(OPTION_RANGES)}"
        )
    cleaned = {}
    for name, value in options.items():
        kind, low, high = OPTION_RANGES[name]
        if kind is bool:
            if not isinstance(value, bool):
                raise PipelineError(f"{name} must be true or false (got {value!r})")
            cleaned[name] = value
            continue
        is_number = isinstance(value, int | float) and not isinstance(value, bool)
        if not is_number or not math.isfinite(value) or (kind is int and value != int(value)):
            what = "a whole number" if kind is int else "a number"
            raise PipelineError(f"{name} must be {what} (got {value!r})")
        number = kind(value)
        if name == "quantile":
            if not low < number < high:
                raise PipelineError(f"quantile must be between 0 and 1, exclusive (got {value})")
        elif number < low or (high is not None and number > high):
            limit = f"between {low} and {high}" if high is not None else f"at least {low}"
            raise PipelineError(f"{name} must be {limit} (got {value})")
        cleaned[name] = number
    return cleaned


def _check_layers(network: Network, layers: Sequence[str]) -> list[str]:
    """Validate layer names: aliases are checked from the row; anything else loads the network
    (module paths). Raises PipelineError listing the valid names."""
    names = [name.strip() for name in layers if name.strip()]
    if not names:
        raise PipelineError("choose at least one layer (e.g. --layers conv5,pool5)")
    if len(set(names)) != len(names):
        raise PipelineError(f"a layer was chosen twice: {', '.join(names)}")
    if all(name in network.layer_aliases for name in names):
        return names
    from dissect.networks import NetworkLoadError, resolve_layers

    net = network_load(network=network)
    try:
        resolve_layers(net, names)
    except NetworkLoadError as exc:
        valid = ", ".join(network.layer_aliases) or "see `python manage.py layers NETWORK`"
        raise PipelineError(
            f"{exc}. Valid layer names for network {network.name}: {valid} "
            f"(all module paths: `python manage.py layers {network.name}`)"
        ) from exc
    return names


def run_create(
    *,
    network: Network,
    image_set: ImageSet,
    layers: Sequence[str],
    top_k: int = DEFAULTS["top_k"],
    controls: int = DEFAULTS["controls"],
    shard_size: int = DEFAULTS["shard_size"],
    segmentation: str = DEFAULTS["segmentation"],
    receptive_field: bool = False,
    device: str = "auto",
    tile_px: int = DEFAULTS["tile_px"],
    batch_size: int = DEFAULTS["batch_size"],
    workers: int = DEFAULTS["workers"],
    seed: int = 0,
    options: dict | None = None,
    created_by=None,
) -> DissectionRun:
    """Validate the parameters and create a pending run with its shards (``shard_size``
    usable images each, in image id order). ``options`` sets advanced parameters (quantile,
    montage_tile_px, rf_images, rf_patch_px, rf_stride_px). Raises PipelineError naming the
    bad parameter."""
    options = options_clean(options or {})
    if segmentation not in SEGMENTATIONS:
        raise PipelineError(
            f"unknown segmentation {segmentation!r}: use one of {', '.join(SEGMENTATIONS)}"
        )
    if device not in DEVICES:
        raise PipelineError(f"unknown device {device!r}: use one of {', '.join(DEVICES)}")
    for field_name, value, low in (
        ("top_k", top_k, 1),
        ("controls", controls, 0),
        ("shard_size", shard_size, 1),
        ("tile_px", tile_px, 16),
        ("batch_size", batch_size, 1),
        ("workers", workers, 0),
    ):
        if int(value) < low:
            raise PipelineError(f"{field_name} must be at least {low} (got {value})")
    names = _check_layers(network, layers)
    ids = list(
        image_set.images.filter(status=Image.Status.OK).order_by("id").values_list("id", flat=True)
    )
    n_images = len(ids)
    if n_images == 0:
        raise PipelineError(
            f"image set {image_set.name} has no usable images ({image_set.bad_count} bad files); "
            "scan a folder with images first (`python manage.py scan_images`)"
        )
    parameters = {
        **DEFAULTS,
        **options,
        "top_k": int(top_k),
        "controls": int(controls),
        "shard_size": int(shard_size),
        "segmentation": segmentation,
        "receptive_field": bool(receptive_field),
        "device": device,
        "tile_px": int(tile_px),
        "batch_size": int(batch_size),
        "workers": int(workers),
        "n_images": n_images,
        # Shard i covers image ids [bounds[i], bounds[i+1]): fixed at creation, so an image
        # found broken by one shard (and marked bad) never shifts another shard's slice.
        "shard_bounds": [ids[i] for i in range(0, n_images, shard_size)] + [ids[-1] + 1],
        "image_set_sha256": image_set.manifest_sha256,
        "weights_sha256": network.weights_sha256,
    }
    with transaction.atomic():
        run = DissectionRun.objects.create(
            network=network,
            image_set=image_set,
            layers=names,
            parameters=parameters,
            seed=seed,
            created_by=created_by if getattr(created_by, "pk", None) else None,
            progress={"extract": {"done": 0, "total": n_images}},
        )
        Shard.objects.bulk_create(
            Shard(
                run=run,
                index=i,
                first_image=i * shard_size,
                image_count=min(shard_size, n_images - i * shard_size),
            )
            for i in range(math.ceil(n_images / shard_size))
        )
    return run


# Web requests in the embedded default run the eager pipeline in a thread, so the page returns
# and shows progress; tests switch it off to run the pipeline inline.
EAGER_WEB_THREADS = True


def run_start(*, run: DissectionRun, background: bool = False) -> DissectionRun:
    """Mark the run running and enqueue its pipeline after the transaction commits. Eager mode
    (the embedded default) runs it right there, in this process; with ``background=True`` (web
    requests) in a thread instead. Shards already stored are not redone."""
    if run.status in (DissectionRun.Status.DONE, DissectionRun.Status.IMPORTED):
        raise PipelineError(f"run {run.pk} is {run.status}: nothing to start")
    device = run.parameters.get("device", "auto")
    run.device = "" if device == "auto" else device  # the worker records what it resolved
    run.status = DissectionRun.Status.RUNNING
    run.stage = "extract"
    run.error = ""
    run.code_version = code_version()
    run.started_at = run.started_at or timezone.now()
    run.finished_at = None
    # Each start is a new attempt: tasks still queued from an earlier one then do nothing.
    run.parameters = {**run.parameters, "attempt": int(run.parameters.get("attempt", 0)) + 1}
    run.save(
        update_fields=["device", "status", "stage", "error", "code_version", "started_at",
                       "finished_at", "parameters"]
    )  # fmt: skip
    pending = _shards_to_do(run)
    done_images = sum(s.image_count for s in run.shards.all() if s.index not in pending)
    progress_set(run.pk, "extract", done=done_images, total=run.parameters.get("n_images", 0))

    run_id = run.pk
    if background and settings.CELERY_TASK_ALWAYS_EAGER and EAGER_WEB_THREADS:
        thread = threading.Thread(
            target=_enqueue_in_thread, args=(run_id, pending), name=f"dissect-run-{run_id}",
            daemon=True,
        )  # fmt: skip
        transaction.on_commit(thread.start)
    else:
        transaction.on_commit(lambda: _enqueue(run_id, pending))
    return run


def _enqueue(run_id: int, pending: list[int]) -> None:
    from dissect import tasks

    tasks.enqueue_run(run_id=run_id, shard_indexes=pending)


def _enqueue_in_thread(run_id: int, pending: list[int]) -> None:
    from django.db import connection

    try:
        _enqueue(run_id, pending)
    except Exception:  # the task already stored the error on the run row
        logger.exception("run %s failed", run_id)
    finally:
        connection.close()


def _shards_to_do(run: DissectionRun) -> list[int]:
    """Shards without a stored state file: a done shard whose file went missing is redone."""
    todo = []
    for shard in run.shards.all().order_by("index"):
        if (
            shard.status == Shard.Status.DONE
            and shard.state_path
            and Path(shard.state_path).is_file()
        ):
            continue
        todo.append(shard.index)
    return todo


def run_resume(*, run: DissectionRun, background: bool = False) -> DissectionRun:
    """Continue a failed, cancelled or interrupted run from the shards already stored."""
    if run.status == DissectionRun.Status.DONE:
        raise PipelineError(f"run {run.pk} is already done: nothing to resume")
    if run.status == DissectionRun.Status.IMPORTED:
        raise PipelineError(f"run {run.pk} was imported (labels only): it cannot be resumed")
    return run_start(run=run, background=background)


def run_cancel(*, run: DissectionRun) -> DissectionRun:
    """Cancel a pending or running run: workers stop at their next batch; stored shards stay,
    so ``--resume`` can continue it later."""
    if run.status not in (DissectionRun.Status.PENDING, DissectionRun.Status.RUNNING):
        raise PipelineError(f"run {run.pk} is {run.status}: only pending or running runs cancel")
    DissectionRun.objects.filter(pk=run.pk).update(
        status=DissectionRun.Status.CANCELLED, finished_at=timezone.now()
    )
    run.refresh_from_db()
    return run


def run_fail(*, run_id: int, error: str) -> None:
    """Record a failure (the stage it happened in stays on the row)."""
    DissectionRun.objects.filter(pk=run_id).exclude(status=DissectionRun.Status.CANCELLED).update(
        status=DissectionRun.Status.FAILED, error=error[:10_000], finished_at=timezone.now()
    )


def _active_run(run_id: int, attempt: int | None = None) -> DissectionRun | None:
    """The run, or None when it was cancelled or failed meanwhile, or when ``attempt`` is from
    an earlier start (a task still queued from before a cancel + resume): such tasks do nothing."""
    run = DissectionRun.objects.select_related("network", "image_set").get(pk=run_id)
    if run.status in (DissectionRun.Status.CANCELLED, DissectionRun.Status.FAILED):
        return None
    if attempt is not None and attempt != run.parameters.get("attempt"):
        logger.info("run %s: skipping a task of attempt %s", run_id, attempt)
        return None
    return run


# -- extraction (one shard) ----------------------------------------------------------------------


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

    run = _active_run(run_id, attempt)
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
        _image_mark_bad(image_id=failed.image_id, reason=reason)

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


# -- merge -----------------------------------------------------------------------------------


def run_merge(*, run_id: int, attempt: int | None = None) -> None:
    """Combine the stored shard states and write Layer, Unit (threshold, top score) and
    UnitImage rows (top-K and controls with scores and argmax positions)."""
    import torch

    from dissect.networks import theoretical_receptive_fields

    run = _active_run(run_id, attempt)
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


# -- receptive field (optional) -----------------------------------------------------------------


def run_receptive_field(*, run_id: int, layer_name: str, attempt: int | None = None) -> None:
    """Empirical receptive field of one layer by occlusion (the engine's
    ``estimate_receptive_fields``) over each unit's first ``rf_images`` top images: RF size per
    unit and the layer's mean and std; each unit's RF map is saved to media storage."""
    from dissect.engine.receptive_field import estimate_receptive_fields, heatmap_image
    from dissect.images import load_rgb, preprocess_transform

    run = _active_run(run_id, attempt)
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
            unit.rf_map_path = save_content_addressed(_png_bytes(image), kind="rf", ext="png")
    Unit.objects.bulk_update(units, ["rf_size_px", "rf_map_path"], 1000)
    layer.empirical_rf_mean_px = _finite(result.mean_px)
    layer.empirical_rf_std_px = _finite(result.std_px)
    layer.save(update_fields=["empirical_rf_mean_px", "empirical_rf_std_px"])
    timing_add(run_id, f"receptive_field {layer_name}", time.monotonic() - started)


# -- render ----------------------------------------------------------------------------------


def _png_bytes(image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def _jpeg_bytes(image, quality: int = 88) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


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


def run_render(
    *,
    run_id: int,
    attempt: int | None = None,
    part: int = 0,
    parts: int = 1,
    progress: Progress | None = None,
) -> int:
    """Re-run only the images in some unit's lists (each once, all layers in one forward pass),
    build each unit's mask with the run's recipe and write its tiles to media storage
    (content-addressed). ``part`` of ``parts`` takes the images whose id modulo ``parts`` is
    ``part``, so several workers can render one run. Returns the number of tiles written."""
    import torch

    from dissect.engine.extract import resolve_device
    from dissect.engine.segment import make_mask
    from dissect.images import iter_image_batches
    from dissect.networks import resolve_layers
    from dissect.networks.layers import capture_outputs, run_until_captured

    run = _active_run(run_id, attempt)
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
    for ui in UnitImage.objects.filter(unit__layer__run=run).order_by("id"):
        if ui.image_id % parts == part:
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
    resolved = resolve_layers(net, list(layers))
    dev = resolve_device(params.get("device", "auto"))
    model = net.model.to(dev)
    done, writes = 0, []
    pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="tiles")

    def on_failure(failed) -> None:
        _image_mark_bad(image_id=failed.image_id, reason=failed.reason)

    try:
        with torch.inference_mode(), capture_outputs(resolved, stop_early=True) as captured:
            for image_ids, x in iter_image_batches(
                items,
                net.preprocessing,
                batch_size=params.get("batch_size", 32),
                workers=params.get("workers", 0),
                on_failure=on_failure,
            ):
                run_until_captured(model, x.to(dev), captured)
                maps = {alias: out.float().cpu() for alias, out in captured.items()}
                for row, (image_id, view) in enumerate(
                    zip(image_ids.tolist(), _view_images(x, net.preprocessing), strict=True)
                ):
                    for ui in wanted[image_id]:
                        unit = units[ui.unit_id]
                        amap = maps[unit.layer.name][row, unit.index]
                        if amap.dim() == 0:
                            amap = amap.view(1, 1)
                        mask = make_mask(
                            recipe, amap, view.size,
                            **_mask_params(recipe, unit.layer, unit, input_size),
                        )  # fmt: skip
                        # Encoding and writing release the GIL: overlap them with the masks.
                        writes.append((ui.pk, pool.submit(_tile_write, view, mask, tile_px)))
                    done += len(wanted[image_id])
                if len(writes) >= 2000:
                    _tile_paths_store(writes)
                    writes = []
                reporter(done)
            _tile_paths_store(writes)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        net.model.to("cpu")
    reporter.close(done=done)
    timing_add(run_id, "render", time.monotonic() - started)
    if progress is not None:
        progress(done, total)
    return done


def run_montages(*, run_id: int, attempt: int | None = None) -> None:
    """One montage per unit from its stored tiles (after every render part)."""
    run = _active_run(run_id, attempt)
    if run is None:
        return
    started = time.monotonic()
    tile_px = int(run.parameters.get("montage_tile_px", DEFAULTS["montage_tile_px"]))
    _montages_write(run, tile_px=tile_px)
    timing_add(run_id, "render", time.monotonic() - started)


def _tile_write(view, mask, tile_px: int) -> str:
    from dissect.engine.segment import make_tile

    return save_content_addressed(
        _jpeg_bytes(make_tile(view, mask, tile_px=tile_px)), kind="tiles", ext="jpg"
    )


def _tile_paths_store(writes: list) -> None:
    """Store (UnitImage id, future of its tile name) pairs: one executemany, as bulk_update's
    CASE expression costs more than the tiles themselves for tens of thousands of rows."""
    from django.db import connection

    params = [(future.result(), unit_image_id) for unit_image_id, future in writes]
    table = connection.ops.quote_name(UnitImage._meta.db_table)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.executemany(f"UPDATE {table} SET tile_path = %s WHERE id = %s", params)


def _montages_write(run: DissectionRun, *, tile_px: int) -> None:
    """One montage per unit: its top tiles in rank order, read back from storage."""
    from django.core.files.storage import default_storage
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
    units = list(Unit.objects.filter(pk__in=list(tiles_of)))
    for unit in units:
        tiles = []
        for name in tiles_of[unit.pk]:
            with default_storage.open(name, "rb") as fh:
                tiles.append(PILImage.open(fh).convert("RGB").resize((tile_px, tile_px)))
        unit.montage_path = save_content_addressed(
            _jpeg_bytes(make_montage(tiles)), kind="montages", ext="jpg"
        )
    Unit.objects.bulk_update(units, ["montage_path"], 1000)


def run_finish(*, run_id: int, attempt: int | None = None) -> None:
    """Mark a run done (the last step of the pipeline)."""
    if _active_run(run_id, attempt) is None:
        return
    DissectionRun.objects.filter(pk=run_id, status=DissectionRun.Status.RUNNING).update(
        status=DissectionRun.Status.DONE, stage="done", finished_at=timezone.now()
    )


# -- demo ------------------------------------------------------------------------------------

DEMO_NETWORKS = (("demo-places", "scenes"), ("demo-objects", "objects"))
DEMO_LAYERS = ("conv5", "pool5")


def demo_runs_create(
    *, n_images: int = 1000, top_k: int = 60, progress: Progress | None = None
) -> list[DissectionRun]:
    """The README's demo: write the demo world (``DATA_DIR/demo-world``), register demo-places
    and demo-objects, scan, and dissect conv5 and pool5 of both, with tiles. Idempotent: what
    exists (world files, networks, image set, finished runs) is reused."""
    from dissect.demo.world import write_demo_world

    world = Path(settings.DATA_DIR) / "demo-world"
    meta = world / "world.json"
    manifest = world / "manifest.csv"
    written = json.loads(meta.read_text()).get("n_images") if meta.is_file() else None
    if written != n_images:
        write_demo_world(world, n_images=n_images, seed=0, size=128, variant="scenes",
                         progress=progress)  # fmt: skip
        manifest.unlink(missing_ok=True)
    if not manifest.is_file():
        _demo_manifest_write(world, manifest)
    image_set = ImageSet.objects.filter(name="demo-world").first()
    if image_set is None or image_set.image_count != n_images:
        image_set = image_set_scan(
            name="demo-world",
            root=world / "images",
            manifest=manifest,
            labels_dir=world,
            description=f"Demo world, {n_images} procedural scenes at 128 px (seed 0).",
        )
    runs = []
    for name, training in DEMO_NETWORKS:
        network = Network.objects.filter(name=name).first() or network_register(
            name=name,
            arch=name,
            training_data=f"demo world ({training})",
            description=f"Small AlexNet-style network trained on the demo world's {training}.",
        )
        run = (
            DissectionRun.objects.filter(
                network=network, image_set=image_set, layers=list(DEMO_LAYERS)
            )
            .exclude(status=DissectionRun.Status.IMPORTED)
            .order_by("-created_at")
            .first()
        )
        eager = settings.CELERY_TASK_ALWAYS_EAGER
        if run is None:
            run = run_create(
                network=network,
                image_set=image_set,
                layers=list(DEMO_LAYERS),
                top_k=top_k,
                shard_size=max(1, math.ceil(n_images / 2)),
                options={"auto_labels": True},  # the world has pixel labels: explain needs them
            )
            run_start(run=run)
        elif run.status != DissectionRun.Status.DONE and (
            eager or run.status != DissectionRun.Status.RUNNING
        ):
            # Failed, cancelled, or left "running" by a process that died (eager): continue it
            # from its stored shards; a run on live workers is simply waited for.
            run_resume(run=run)
        runs.append(run)
    return [run_wait(run=run) for run in runs]


def run_wait(*, run: DissectionRun, timeout_s: float = 3600, poll_s: float = 1.0) -> DissectionRun:
    """Block until the run is done (with workers; eager runs are already finished). Raises
    PipelineError when it fails, is cancelled or takes longer than ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        run.refresh_from_db()
        if run.status == DissectionRun.Status.DONE:
            return run
        if run.status in (DissectionRun.Status.FAILED, DissectionRun.Status.CANCELLED):
            raise PipelineError(
                f"run {run.pk} {run.status}: {run.error or 'no error text'}; fix the cause and "
                f"resume it with `python manage.py dissect --resume {run.pk}`"
            )
        if time.monotonic() > deadline:
            raise PipelineError(
                f"run {run.pk} is still {run.status} after {timeout_s:.0f} s; are the Celery "
                "workers running (`celery -A config worker -Q gpu,cpu`)?"
            )
        time.sleep(poll_s)


def _demo_manifest_write(world: Path, manifest: Path) -> None:
    """A manifest of the demo world's photos (not its label-map PNGs), with scene and split."""
    import csv

    with open(world / "index.csv", newline="") as src, open(manifest, "w", newline="") as dst:
        writer = csv.writer(dst)
        writer.writerow(["path", "label", "split"])
        for row in csv.DictReader(src):
            writer.writerow([row["image"], row["class"], row["split"]])
