"""manage.py simulate_crowd: fixed against adaptive redundancy, with a simulated crowd on the demo world."""

from django.core.management.base import BaseCommand, CommandError

from annotate.demo.simulated_crowd import CrowdModel, redundancy_compare


class Command(BaseCommand):
    help = (
        "Run campaigns on a demo-world run with SIMULATED workers (stated accuracy and spammer "
        "share; pseudonyms sim-…), once per strategy: fixed redundancy and adaptive redundancy. "
        "Prints answers spent per unit and label accuracy against the demo world's ground truth. "
        "The campaigns are deleted afterwards (the run's labels are recomputed) unless --keep."
    )

    def add_arguments(self, parser):
        parser.add_argument("--run", type=int, help="A demo-world run (default: demo-places').")
        parser.add_argument("--layers", default="", help="Layers, comma-separated (default all).")
        parser.add_argument("--workers", type=int, default=CrowdModel.workers)
        parser.add_argument(
            "--accuracy",
            type=float,
            default=CrowdModel.accuracy,
            help="Careful workers' chance to name a clear unit's concept (default 0.8).",
        )
        parser.add_argument(
            "--spammers", type=float, default=CrowdModel.spammer_share, help="Share of spammers."
        )
        parser.add_argument("--seed", type=int, default=CrowdModel.seed)
        parser.add_argument(
            "--fixed", default="3,5", help="Fixed redundancies to compare (default 3,5)."
        )
        parser.add_argument("--min", type=int, default=2, help="Adaptive: minimum answers.")
        parser.add_argument("--max", type=int, default=5, help="Adaptive: maximum answers.")
        parser.add_argument("--target", type=float, default=0.9, help="Adaptive: confidence.")
        parser.add_argument("--keep", action="store_true", help="Keep the simulated campaigns.")

    def handle(self, *args, **o):
        import logging

        from tqdm import tqdm

        # Eager tasks (every answer's label recompute) would each log a line between the bars.
        logging.getLogger("celery.app.trace").setLevel(logging.WARNING)
        from annotate.crowd.services import CrowdError
        from dissect.models import DissectionRun

        if o["run"] is not None:
            run = DissectionRun.objects.filter(pk=o["run"]).first()
            if run is None:
                raise CommandError(f"--run: no run {o['run']}.")
        else:
            run = (
                DissectionRun.objects.filter(network__name="demo-places", status="done")
                .order_by("-created_at")
                .first()
            )
            if run is None:
                raise CommandError("No demo run yet: run `python manage.py demo` first.")
        try:
            fixed = [int(x) for x in o["fixed"].split(",") if x.strip()]
        except ValueError:
            raise CommandError(
                "--fixed: give whole numbers separated by commas, e.g. 3,5."
            ) from None
        model = CrowdModel(
            workers=o["workers"],
            accuracy=o["accuracy"],
            spammer_share=o["spammers"],
            seed=o["seed"],
        )
        self.stdout.write(f"Run {run.pk} ({run.network.name}); {model.describe()}. SIMULATED.")
        bar = tqdm(total=0, unit="answer", leave=False)

        def progress(strategy: str, done: int, total: int):
            bar.set_description(strategy)
            bar.total, bar.n = total, done
            bar.refresh()

        try:
            scores = redundancy_compare(
                run=run,
                layers=[x.strip() for x in o["layers"].split(",") if x.strip()],
                model=model,
                fixed=fixed,
                adaptive=(o["min"], o["max"], o["target"]),
                keep=o["keep"],
                progress=progress,
            )
        except (CrowdError, FileNotFoundError) as error:
            raise CommandError(str(error)) from None
        finally:
            bar.close()
        self.stdout.write(
            "\n| strategy | units | answers | answers per unit | accuracy (plurality label) "
            "| accuracy (one-coin label) |\n|---|---|---|---|---|---|"
        )
        for s in scores:
            self.stdout.write(
                f"| {s.strategy} | {s.units} | {s.answers} | {s.answers_per_unit:.2f} | "
                f"{s.accuracy_plurality:.3f} | {s.accuracy_posterior:.3f} |"
            )
        adaptive = scores[-1]
        for s in scores[:-1]:
            saved = 1 - adaptive.answers / s.answers if s.answers else 0.0
            self.stdout.write(
                f"adaptive vs {s.strategy}: {saved:+.0%} fewer answers; accuracy "
                f"{adaptive.accuracy_plurality:.3f} vs {s.accuracy_plurality:.3f} (plurality), "
                f"{adaptive.accuracy_posterior:.3f} vs {s.accuracy_posterior:.3f} (one-coin)"
            )
