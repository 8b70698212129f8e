"""What every part of the pipeline shares: parameter defaults (from dissect.parameters), the error types,
the code version, the active-run check and image encoding."""

from __future__ import annotations

import io
import logging
import subprocess
from collections.abc import Callable

from django.conf import settings

from core.errors import AppError, Conflict
from dissect.models import DissectionRun
from dissect.parameters import DEFAULTS  # noqa: F401  (the stages read their defaults here)

logger = logging.getLogger(__name__)

Progress = Callable[[int, int], None]

# The run's parameters, their ranges and defaults live in dissect/parameters.py (one schema for
# the service, the form, the API and the command); a new run option is a Param in RUN_OPTIONS.


class PipelineError(AppError, ValueError):
    """A request the pipeline cannot carry out; the message says what to change (400)."""


class PipelineConflict(PipelineError, Conflict):
    """The run is in the wrong state for this action (start a done run, cancel a failed one): 409."""


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


def active_run(run_id: int, attempt: int | None = None) -> DissectionRun | None:
    """The run, or None when it was cancelled or failed meanwhile, or when ``attempt`` is from
    an earlier start (a task still queued from before a cancel + resume): such tasks do nothing."""
    from dissect.image_store import image_set_localize

    run = DissectionRun.objects.select_related("network", "image_set").get(pk=run_id)
    if run.status in (DissectionRun.Status.CANCELLED, DissectionRun.Status.FAILED):
        return None
    if attempt is not None and attempt != run.parameters.get("attempt"):
        logger.info("run %s: skipping a task of attempt %s", run_id, attempt)
        return None
    # With the object store, this host reads the image set's files from its own cached copy.
    image_set_localize(run.image_set)
    return run


def png_bytes(image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def jpeg_bytes(image, quality: int = 88) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()
