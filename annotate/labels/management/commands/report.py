import json

from django.core.management.base import BaseCommand, CommandError

from annotate.labels.reports import ReportError, layer_report, run_for_network
from core import csv_safe
from core.concepts.vocabulary import CATEGORY_KEYS


class Command(BaseCommand):
    # URL and template checks are not needed to read or write labels.
    requires_system_checks: list[str] = []
    help = (
        "Per-layer report of a network's crowd labels: percent of answers per category (the "
        "paper's Fig. 9), mean unit precision and detector counts."
    )

    def add_arguments(self, parser):
        parser.add_argument("--network", required=True, help="Network name (see the admin).")
        parser.add_argument("--layer", action="append", help="Only this layer (repeatable).")
        parser.add_argument("--run", type=int, help="Run id (default: latest labeled run).")
        parser.add_argument("--format", choices=["table", "json", "csv"], default="table")

    def handle(self, *args, network, layer, run, format, **options):
        try:
            dissection = run_for_network(network=network, run_id=run)
            rows = layer_report(run=dissection, layers=layer)
        except ReportError as exc:
            raise CommandError(str(exc)) from None
        if format == "json":
            payload = {
                "network": network,
                "run": dissection.pk,
                "layers": [row.as_dict() for row in rows],
            }
            self.stdout.write(json.dumps(payload, indent=2))
            return
        header = ["layer", "units", "answers"]
        header += [f"{c}_pct" for c in CATEGORY_KEYS]
        header += ["mean_precision", "mean_agreement", "detectors"]
        header += [f"detectors_{c}" for c in CATEGORY_KEYS]
        table = []
        for row in rows:
            table.append(
                [row.layer, row.units, row.answers]
                + [round(row.category_percent[c], 2) for c in CATEGORY_KEYS]
                + [
                    "" if row.mean_precision is None else round(row.mean_precision, 4),
                    "" if row.mean_agreement is None else round(row.mean_agreement, 4),
                    row.detectors,
                ]
                + [row.detectors_by_category[c] for c in CATEGORY_KEYS]
            )
        if format == "csv":
            writer = csv_safe.writer(self.stdout, lineterminator="\n")
            writer.writerow(header)
            writer.writerows(table)
            return
        self._table(network, dissection, rows)

    def _table(self, network, run, rows):
        short = {
            "scene": "scene",
            "object": "object",
            "region": "region",
            "part": "part",
            "material": "texture",
            "color": "color",
        }
        head = ["layer", "units", "answers"] + [f"{short[c]} %" for c in CATEGORY_KEYS]
        head += ["mean prec.", "detectors"]
        lines = []
        for row in rows:
            lines.append(
                [row.layer, str(row.units), str(row.answers)]
                + [f"{row.category_percent[c]:.1f}" for c in CATEGORY_KEYS]
                + [
                    "-" if row.mean_precision is None else f"{row.mean_precision:.3f}",
                    str(row.detectors),
                ]
            )
        widths = [max(len(h), *(len(r[i]) for r in lines)) for i, h in enumerate(head)]
        self.stdout.write(f"Network {network} (run {run.pk}): percent of answers per category")
        self.stdout.write("  ".join(h.rjust(w) for h, w in zip(head, widths, strict=True)))
        for line in lines:
            self.stdout.write("  ".join(v.rjust(w) for v, w in zip(line, widths, strict=True)))
        from annotate.labels.aggregation import detector_min_agreeing, detector_precision

        self.stdout.write(
            f"detector: unit precision >= {detector_precision():g} and at least "
            f"{detector_min_agreeing()} answers naming the consensus concept"
        )
