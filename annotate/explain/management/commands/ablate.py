"""``python manage.py ablate --network NAME [--layer conv5]``: zero units and measure per-class
accuracy on held-out demo images; per class, the units it depends on; per concept, its units
removed or kept alone."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from annotate.explain.management.commands._paper_cli import add_output_arguments, run_report


class Command(BaseCommand):
    requires_system_checks = []  # compute only: no URL or model checks needed
    help = (
        "Unit ablation on held-out demo-world images: each unit of a layer zeroed alone (ranked "
        "per class), each class's top-k units removed vs k random units, only its top units "
        "kept, and each labeled concept's units removed or kept alone."
    )

    def add_arguments(self, parser):
        parser.add_argument("--network", required=True)
        parser.add_argument("--layer", default="conv5")
        parser.add_argument("--n-images", type=int, default=300)
        parser.add_argument("--seed", type=int, default=2025, help="World seed (held out).")
        parser.add_argument(
            "--labels",
            choices=("measured", "auto", "crowd", "both"),
            default="measured",
            help="measured: automatic labels computed here on fresh scenes; "
            "else the stored labels of the network's newest run.",
        )
        parser.add_argument("--label-images", type=int, default=300)
        parser.add_argument("--min-iou", type=float, default=0.04)
        parser.add_argument("--top-k", type=int, default=5)
        add_output_arguments(parser)

    def handle(self, *args, **o):
        from annotate.explain import paper
        from annotate.explain.ablation import ablation_tables

        run_report(
            self,
            o,
            desc="ablate units",
            kind="ablation",
            compute=lambda progress: paper.ablation(
                network=o["network"],
                layer=o["layer"],
                n_images=o["n_images"],
                seed=o["seed"],
                labels=o["labels"],
                label_images=o["label_images"],
                min_iou=o["min_iou"],
                top_k=o["top_k"],
                progress=progress,
            ),
            table=ablation_tables,
        )
