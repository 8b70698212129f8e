"""Shared bits of the paper commands (minimal_images, ablate, why_objects): progress bar, JSON out."""

from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from pathlib import Path


def add_output_arguments(parser) -> None:
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads (1 is fastest on a shared machine: these are "
        "many small forward passes).",
    )
    parser.add_argument("--json", dest="json_out", help="Write the JSON report here ('-': stdout).")
    parser.add_argument("--markdown", help="Also write the Markdown table to this file.")
    parser.add_argument(
        "--no-store",
        action="store_true",
        help="Do not store the report for the pages (DATA_DIR/paper/).",
    )


@contextmanager
def progress_bar(desc: str, verbosity: int, threads: int | None = None):
    import torch
    from tqdm import tqdm

    if threads:
        torch.set_num_threads(max(1, threads))

    bar = tqdm(desc=desc, disable=verbosity == 0, file=sys.stderr)

    def progress(done: int, total: int) -> None:
        if bar.total != total:
            bar.reset(total=total)
        bar.update(done - bar.n)

    try:
        yield progress
    finally:
        bar.close()


def emit(command, *, network: str, kind: str, report: dict, table: str, options: dict) -> None:
    from annotate.explain.paper import write_report

    if options["json_out"] == "-":
        command.stdout.write(json.dumps(report, indent=1))
    else:
        command.stdout.write(table)
    if options["json_out"] and options["json_out"] != "-":
        Path(options["json_out"]).write_text(json.dumps(report, indent=1))
        command.stderr.write(f"wrote {options['json_out']}")
    if options["markdown"]:
        Path(options["markdown"]).write_text(table)
        command.stderr.write(f"wrote {options['markdown']}")
    if not options["no_store"]:
        path = write_report(network, kind, report)
        command.stderr.write(f"stored {path} (shown at /explain/paper/)")


def run_report(command, options: dict, *, desc: str, kind: str, compute, table) -> None:
    """Run ``compute(progress)`` under a progress bar, turn a PaperError into the command's one
    line, and emit the report with ``table(report)`` (the ablate and why_objects commands)."""
    from django.core.management.base import CommandError

    from annotate.explain import paper

    try:
        with progress_bar(desc, options["verbosity"], options["threads"]) as progress:
            report = compute(progress)
    except paper.PaperError as exc:
        raise CommandError(str(exc)) from exc
    emit(
        command,
        network=options["network"],
        kind=kind,
        report=report,
        table=table(report),
        options=options,
    )
