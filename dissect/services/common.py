"""What every part of the pipeline shares: parameters and their defaults, the error type,
the code version, a run's folder, the active-run check and image encoding."""

from __future__ import annotations

import io
import logging
import subprocess
from collections.abc import Callable
from pathlib import Path

from django.conf import settings

from dissect.models import DissectionRun

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
# auto_labels: the optional automatic-label stage (dissect.tasks.auto_label_run).
OPTION_RANGES: dict[str, tuple[type, float | None, float | None]] = {
    "quantile": (float, 0.0, 1.0),  # strictly between: the unit threshold's activation quantile
    "montage_tile_px": (int, 16, 512),
    "rf_images": (int, 1, 100),
    "rf_patch_px": (int, 1, None),
    "rf_stride_px": (int, 1, None),
    "auto_labels": (bool, None, None),
}


class PipelineError(ValueError):
    """A request the pipeline cannot carry out; the message says what to change."""


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


def active_run(run_id: int, attempt: int | None = None) -> DissectionRun | None:
    """The run, or None when it was cancelled or failed meanwhile, or when ``attempt`` is from
    an earlier start (a task still queued from before a cancel + resume): such tasks do nothing."""
    run = DissectionRun.objects.select_related("network", "image_set").get(pk=run_id)
    if run.status in (DissectionRun.Status.CANCELLED, DissectionRun.Status.FAILED):
        return None
    if attempt is not None and attempt != run.parameters.get("attempt"):
        logger.info("run %s: skipping a task of attempt %s", run_id, attempt)
        return None
    return run


def png_bytes(image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def jpeg_bytes(image, quality: int = 88) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()
