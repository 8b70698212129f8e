"""Shared bits of the dissect commands: turning pipeline errors into CommandError, printing a
run's status, and following a run that executes on workers."""

from __future__ import annotations

import time

from django.core.management.base import CommandError

from dissect.models import DissectionRun


def get_run(run_id: int) -> DissectionRun:
    try:
        return DissectionRun.objects.select_related("network", "image_set").get(pk=run_id)
    except DissectionRun.DoesNotExist:
        raise CommandError(
            f"no run {run_id}: list the runs in the web app (Runs) or the admin"
        ) from None


def status_lines(run: DissectionRun) -> list[str]:
    """Human lines for ``dissect --status``: what, status, per-stage progress, errors."""
    from dissect.selectors import run_bad_images, run_status

    status = run_status(run=run)
    image_set = run.image_set.name if run.image_set else "-"
    lines = [
        f"run {run.pk}: {run.network.name} on {image_set}, layers {', '.join(run.layers)}",
        f"status: {status['status']}" + (f" (stage {run.stage})" if run.stage else ""),
        f"shards: {status['shards']['done']}/{status['shards']['total']} stored",
    ]
    for stage in status["stages"]:
        seconds = f", {stage['seconds']:.1f} s" if stage["seconds"] is not None else ""
        lines.append(f"  {stage['stage']:<28} {stage['done']:>7}/{stage['total']:<7}{seconds}")
    if run.device or run.code_version:
        lines.append(f"device: {run.device or '-'}, code: {run.code_version or '-'}")
    bad = run_bad_images(run=run).count()
    if bad:
        lines.append(f"bad files skipped: {bad} (listed on the run page)")
    if run.error:
        lines.append(f"error: {run.error}")
    if run.status in (DissectionRun.Status.FAILED, DissectionRun.Status.CANCELLED):
        lines.append(f"resume with: python manage.py dissect --resume {run.pk}")
    return lines


def follow(run: DissectionRun, *, poll_s: float = 1.0) -> DissectionRun:
    """Show tqdm bars from the status row until the run finishes (runs on Celery workers);
    Ctrl-C stops watching, not the run."""
    from tqdm import tqdm

    from dissect.selectors import run_status

    bars: dict[str, tqdm] = {}
    try:
        while True:
            run.refresh_from_db()
            status = run_status(run=run)
            for stage in status["stages"]:
                if stage["total"] and stage["stage"] not in bars:
                    bars[stage["stage"]] = tqdm(total=stage["total"], desc=stage["stage"])
                bar = bars.get(stage["stage"])
                if bar is not None:
                    bar.total = stage["total"]
                    bar.update(stage["done"] - bar.n)
            if status["finished"]:
                return run
            time.sleep(poll_s)
    except KeyboardInterrupt:
        return run
    finally:
        for bar in bars.values():
            bar.close()
