"""``python manage.py why_objects --network NAME``: detectors per object class against object
frequency and against the number of scene classes the object is most discriminative for
(Zhou et al. 2015, §6.3), with Pearson and Spearman r."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from annotate.explain.management.commands._paper_cli import add_output_arguments, run_report


class Command(BaseCommand):
    requires_system_checks = []  # compute only: no URL or model checks needed
    help = (
        "Why these objects: units labeled with each object class vs how often the object occurs "
        "and for how many scene classes it is among the most discriminative objects."
    )

    def add_arguments(self, parser):
        parser.add_argument("--network", required=True)
        parser.add_argument("--layers", default="conv5,pool5", help="Comma-separated layers.")
        parser.add_argument(
            "--labels", choices=("measured", "auto", "crowd", "both"), default="measured"
        )
        parser.add_argument(
            "--n-images",
            type=int,
            default=500,
            help="Fresh scenes (seed 2024) for labels and frequencies.",
        )
        parser.add_argument("--min-iou", type=float, default=0.04)
        parser.add_argument(
            "--top",
            type=int,
            default=1,
            help="An object counts for a scene when among its TOP most discriminative objects.",
        )
        add_output_arguments(parser)

    def handle(self, *args, **o):
        from annotate.explain import paper
        from annotate.explain.emergence_why import why_table

        layers = [x.strip() for x in o["layers"].split(",") if x.strip()]
        run_report(
            self,
            o,
            desc="why objects",
            kind="why",
            compute=lambda progress: paper.why_objects(
                network=o["network"],
                layers=layers,
                labels=o["labels"],
                n_images=o["n_images"],
                min_iou=o["min_iou"],
                top=o["top"],
                progress=progress,
            ),
            table=why_table,
        )
