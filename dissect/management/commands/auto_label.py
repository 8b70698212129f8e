"""``python manage.py auto_label RUN``: automatic (best-IoU) labels for a run's units."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = (
        "Compute Network Dissection labels (best IoU per category and overall) for the units of a "
        "run whose image set has pixel labels (Broden layout), and store them beside the crowd's."
    )

    def add_arguments(self, parser):
        parser.add_argument("run", type=int, help="Run id (its layers must be merged).")
        parser.add_argument("--layers", help="Comma-separated layers (default: all of the run).")
        parser.add_argument("--max-images", type=int, help="Use only the first N labeled images.")
        parser.add_argument("--batch-size", type=int)

    def handle(self, *args, **o):
        from tqdm import tqdm

        from dissect.autolabel import AutoLabelError, run_auto_labels
        from dissect.management.commands._pipeline_cli import get_run
        from dissect.selectors import auto_labels_by_layer
        from dissect.services import PipelineError

        run = get_run(o["run"])
        bar = tqdm(unit="img", desc="auto labels", disable=o["verbosity"] == 0)

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        try:
            written = run_auto_labels(
                run_id=run.pk,
                layers=o["layers"].split(",") if o["layers"] else None,
                max_images=o["max_images"],
                batch_size=o["batch_size"],
                progress=progress,
            )
        except (AutoLabelError, PipelineError) as exc:
            raise CommandError(str(exc)) from exc
        finally:
            bar.close()
        self.stdout.write(f"run {run.pk}: {written} automatic label rows")
        for layer, info in auto_labels_by_layer(run=run).items():
            cats = ", ".join(f"{c or '?'} {n}" for c, n in info["by_category"].items())
            self.stdout.write(
                f"  {layer}: {info['labeled']}/{info['units']} units with IoU >= 0.04 ({cats or '-'})"
            )
