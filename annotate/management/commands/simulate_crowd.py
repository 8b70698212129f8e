"""manage.py simulate_crowd: fixed against adaptive redundancy, with a simulated crowd on the demo world."""

import math

from django.core.management.base import BaseCommand, CommandError

from annotate.demo.simulated_crowd import (
    CrowdModel,
    redundancy_compare,
    replica_compare,
    strategies_compared,
)


class Command(BaseCommand):
    help = (
        "Run campaigns on a demo-world run with SIMULATED workers (stated accuracy and spammer "
        "share; pseudonyms sim-…), once per strategy: fixed redundancy and adaptive redundancy. "
        "Prints answers spent per unit and label accuracy against the demo world's ground truth. "
        "The campaigns are deleted afterwards (the run's labels are recomputed) unless --keep. "
        "With --replica the same simulation runs in memory (nothing stored) for each of --seeds, "
        "and prints each strategy's mean and spread over the seeds."
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
        parser.add_argument("--max", type=int, default=8, help="Adaptive: maximum answers.")
        parser.add_argument("--target", type=float, default=0.95, help="Adaptive: confidence.")
        parser.add_argument("--keep", action="store_true", help="Keep the simulated campaigns.")
        parser.add_argument(
            "--replica",
            action="store_true",
            help="In memory, the same draws and rules as the services, for each of --seeds.",
        )
        parser.add_argument(
            "--seeds", default="0-9", help="With --replica: crowd seeds, e.g. 0-29 or 0,3,7."
        )

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
        layers = [x.strip() for x in o["layers"].split(",") if x.strip()]
        adaptive = (o["min"], o["max"], o["target"])
        if o["replica"]:
            return self._replica(run, layers, model, fixed, adaptive, _seeds(o["seeds"]))
        bar = tqdm(total=0, unit="answer", leave=False)

        def progress(strategy: str, done: int, total: int):
            bar.set_description(strategy)
            bar.total, bar.n = total, done
            bar.refresh()

        try:
            scores = redundancy_compare(
                run=run,
                layers=layers,
                model=model,
                fixed=fixed,
                adaptive=adaptive,
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
                f"adaptive vs {s.strategy}: {_fewer(saved)}; accuracy "
                f"{adaptive.accuracy_plurality:.3f} vs {s.accuracy_plurality:.3f} (plurality), "
                f"{adaptive.accuracy_posterior:.3f} vs {s.accuracy_posterior:.3f} (one-coin)"
            )

    def _replica(self, run, layers, model, fixed, adaptive, seeds):
        from annotate.crowd.services import CrowdError

        strategies = strategies_compared(fixed=fixed, adaptive=adaptive)
        try:
            scores = replica_compare(
                run=run, layers=layers, model=model, strategies=strategies, seeds=seeds
            )
        except (CrowdError, FileNotFoundError, ValueError) as error:
            raise CommandError(str(error)) from None
        self.stdout.write(
            f"In-memory replica, {len(seeds)} crowd seeds ({seeds[0]}…{seeds[-1]}); mean ± "
            "standard deviation over the seeds:\n\n| strategy | units | answers | answers per "
            "unit | accuracy (plurality label) | accuracy (one-coin label) |\n|---|---|---|---|---|---|"
        )
        for strategy in strategies:
            s = scores[strategy.name]
            answers = _spread([x.answers for x in s])
            self.stdout.write(
                f"| {strategy.name} | {s[0].units} | {answers[0]:.0f} ± {answers[1]:.0f} | "
                f"{answers[0] / s[0].units:.2f} | "
                + " | ".join(
                    "{:.3f} ± {:.3f}".format(*_spread([getattr(x, a) for x in s]))
                    for a in ("accuracy_plurality", "accuracy_posterior")
                )
                + " |"
            )
        adaptive = scores[strategies[-1].name]
        for strategy in strategies[:-1]:
            fixed_scores = scores[strategy.name]
            gain = [a.accuracy_posterior - f.accuracy_posterior for a, f in zip(adaptive, fixed_scores, strict=True)]  # fmt: skip
            saved = 1 - sum(a.answers for a in adaptive) / sum(f.answers for f in fixed_scores)
            mean, sd = _spread(gain)
            self.stdout.write(
                f"{strategies[-1].name} vs {strategy.name}: {_fewer(saved)}; one-coin "
                f"accuracy {mean:+.3f} ± {sd / math.sqrt(len(gain)):.3f} (mean ± standard "
                f"error of the paired difference), lower on {sum(g < 0 for g in gain)} of "
                f"{len(gain)} seeds"
            )


def _fewer(saved: float) -> str:
    return f"{saved:.0%} fewer answers" if saved >= 0 else f"{-saved:.0%} more answers"


def _seeds(text: str) -> list[int]:
    try:
        seeds = []
        for part in text.split(","):
            low, _, high = part.strip().partition("-")
            seeds += list(range(int(low), int(high or low) + 1))
    except ValueError:
        raise CommandError("--seeds: give numbers and ranges, e.g. 0-29 or 0,3,7.") from None
    if not seeds:
        raise CommandError("--seeds: give at least one seed.")
    return seeds


def _spread(values: list[float]) -> tuple[float, float]:
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, 0.0
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
