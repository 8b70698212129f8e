"""``python manage.py minimal_images --network NAME [--demo-world | IMAGE...]``: the paper's
minimal images (§3.1). Method 2 on the demo world's ground-truth segments, per scene class the
share of minimal images that keep each object or region; method 1 (SLIC segments) on any image."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from annotate.explain.management.commands._paper_cli import (
    add_output_arguments,
    emit,
    progress_bar,
)


class Command(BaseCommand):
    requires_system_checks = []  # compute only: no URL or model checks needed
    help = (
        "Greedy segment removal until the image is misclassified (Zhou et al. 2015, §3.1): "
        "--demo-world removes ground-truth objects and regions of fresh demo scenes and counts "
        "what survives per scene class; IMAGE files are cut into SLIC superpixels."
    )

    def add_arguments(self, parser):
        parser.add_argument("images", nargs="*", help="Image files (method 1).")
        parser.add_argument("--network", required=True)
        parser.add_argument(
            "--demo-world",
            action="store_true",
            help="Method 2 on fresh demo-world scenes (demo-places).",
        )
        parser.add_argument("--n-images", type=int, default=200)
        parser.add_argument("--seed", type=int, default=2025, help="World seed (held out).")
        parser.add_argument(
            "--method",
            choices=("ground-truth", "slic"),
            default="ground-truth",
            help="With --demo-world: remove ground-truth segments (method 2, stored for the page) "
            "or SLIC segments scored against the ground truth afterwards (method 1, not stored).",
        )
        parser.add_argument("--fill", choices=("smooth", "grey"), default="smooth")
        parser.add_argument("--segments", type=int, default=24, help="SLIC segments (method 1).")
        parser.add_argument(
            "--examples",
            type=int,
            default=6,
            help="Images whose steps the report keeps (with pictures).",
        )
        add_output_arguments(parser)

    def handle(self, *args, **o):
        from annotate.explain import paper
        from annotate.explain.minimal import survival_table

        if o["demo_world"] == bool(o["images"]):
            raise CommandError("give either --demo-world or image files")
        try:
            with progress_bar("minimal images", o["verbosity"], o["threads"]) as progress:
                if o["demo_world"] and o["method"] == "slic":
                    from annotate.explain.minimal import method1_table

                    o["no_store"] = True
                    report = paper.minimal_demo_slic(
                        network=o["network"],
                        n_images=o["n_images"],
                        seed=o["seed"],
                        n_segments=o["segments"],
                        fill=o["fill"],
                        progress=progress,
                    )
                    table = method1_table(report)
                elif o["demo_world"]:
                    report = paper.minimal_demo(
                        network=o["network"],
                        n_images=o["n_images"],
                        seed=o["seed"],
                        fill=o["fill"],
                        examples=o["examples"],
                        progress=progress,
                    )
                    overall = report["overall"]
                    table = survival_table(report) + (
                        f"\n{overall['correct']} of {report['n_images']} scenes classified "
                        f"correctly; their minimal images keep {overall['mean_segments_kept']:.2f} "
                        f"of {overall['mean_segments']:.2f} segments and "
                        f"{overall['mean_pixels_kept']:.0%} of the pixels; "
                        f"{overall['kept_object_share']:.0%} of kept segments are objects.\n"
                    )
                else:
                    report = paper.minimal_files(
                        network=o["network"],
                        paths=o["images"],
                        n_segments=o["segments"],
                        fill=o["fill"],
                        progress=progress,
                    )
                    lines = [
                        f"{r['path']}: {r['class']} — kept {len(r['kept'])} of {r['segments']} "
                        f"segments ({r['pixels_kept']:.0%} of the pixels)"
                        for r in report["images"]
                    ] + [f"{f['path']}: skipped ({f['reason']})" for f in report["failed"]]
                    table = "\n".join(lines) + "\n"
        except paper.PaperError as exc:
            raise CommandError(str(exc)) from exc
        emit(self, network=o["network"], kind="minimal", report=report, table=table, options=o)
