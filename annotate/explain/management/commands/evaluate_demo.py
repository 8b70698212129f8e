"""``python manage.py evaluate_demo``: detection AP and localization mIoU of labeled units on
held-out demo-world scenes, for demo-places and demo-objects, against a random-unit baseline."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = (
        "Evaluate explain()'s object localization on held-out demo-world scenes (true masks): "
        "per object class with a detector, AP of detection and mIoU of the concept masks, next to "
        "a random unit of the same layer. Runs the demo dissection (with automatic labels) first "
        "if it is missing."
    )

    def add_arguments(self, parser):
        parser.add_argument("--n-images", type=int, default=300, help="Held-out scenes to render.")
        parser.add_argument("--seed", type=int, default=1, help="World seed of the held-out scenes "
                            "(the demo run dissects seed 0).")  # fmt: skip
        parser.add_argument("--labels", choices=("auto", "crowd", "both"), default="auto")
        parser.add_argument("--demo-images", type=int, default=1000, help="Size of the demo run.")
        parser.add_argument("--markdown", help="Also write the table to this file.")

    def handle(self, *args, **o):
        from tqdm import tqdm

        from annotate.explain.evaluation import markdown_table
        from annotate.explain.services import ExplainError, evaluate_demo
        from dissect.services import PipelineError

        bar = tqdm(unit="img", desc="evaluate", disable=o["verbosity"] == 0)

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        try:
            results = evaluate_demo(
                n_images=o["n_images"],
                seed=o["seed"],
                source=o["labels"],
                demo_images=o["demo_images"],
                progress=progress,
            )
        except (ExplainError, PipelineError) as exc:
            raise CommandError(str(exc)) from exc
        finally:
            bar.close()
        table = markdown_table(results)
        self.stdout.write(table)
        if o["markdown"]:
            Path(o["markdown"]).write_text(table)
            self.stdout.write(f"wrote {o['markdown']}")
