"""``python manage.py explain --network NAME IMAGE|DIR``: scene + localized concepts per image."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from annotate.explain.selectors import DEFAULT_MIN_IOU


class Command(BaseCommand):
    help = (
        "Explain images with a network's labeled units in one forward pass: writes "
        "<name>.overlay.png and <name>.json per image (top-5 scenes, concept masks as RLE)."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "target", help="An image file or a folder of images (searched recursively)."
        )
        parser.add_argument(
            "--network",
            required=True,
            help="Registered network name, or a built-in one (demo-places, demo-objects).",
        )
        parser.add_argument("--labels", choices=("crowd", "auto", "both"), default="both")
        parser.add_argument(
            "--min-iou",
            type=float,
            default=DEFAULT_MIN_IOU,
            help=f"Use automatic labels from this IoU up (default {DEFAULT_MIN_IOU}, "
            "Network Dissection's level).",
        )
        parser.add_argument(
            "--out", help="Output folder (default: explain-out next to the target)."
        )
        parser.add_argument(
            "--mask-px", type=int, help="Mask resolution (default: max(input, 256))."
        )

    def handle(self, *args, **o):
        from tqdm import tqdm

        from annotate.explain.selectors import network_notes
        from annotate.explain.services import ExplainError, explain_files
        from dissect.images import IMAGE_EXTENSIONS
        from dissect.services.common import PipelineError
        from dissect.services.networks import network_by_name, network_unknown_message

        target = Path(o["target"]).expanduser()
        if target.is_dir():
            paths = sorted(p for p in target.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)
            if not paths:
                raise CommandError(f"{target}: no images ({', '.join(IMAGE_EXTENSIONS)}) inside")
            default_out = target / "explain-out"
        elif target.is_file():
            paths, default_out = [target], target.parent / "explain-out"
        else:
            raise CommandError(f"{target}: no such file or folder")
        out = Path(o["out"]).expanduser() if o["out"] else default_out
        paths = [p for p in paths if out not in p.parents]  # never explain our own overlays
        try:
            network = network_by_name(o["network"])  # a built-in one is registered on first use
        except PipelineError as exc:
            raise CommandError(str(exc)) from exc
        if network is None:
            raise CommandError(network_unknown_message(o["network"]))
        for note in network_notes(network=network):
            self.stdout.write(self.style.WARNING(f"note: {note}"))
        bar = tqdm(total=len(paths), unit="img", disable=o["verbosity"] == 0)
        try:
            summaries = explain_files(
                network=network,
                paths=paths,
                out_dir=out,
                source=o["labels"],
                min_iou=o["min_iou"],
                mask_px=o["mask_px"],
                progress=lambda done, total: bar.update(done - bar.n),
            )
        except ExplainError as exc:
            raise CommandError(str(exc)) from exc
        finally:
            bar.close()
        failed = [s for s in summaries if not s["ok"]]
        for s in summaries:
            if s["ok"] and o["verbosity"] > 1:
                self.stdout.write(f"{s['path']}: {s['scene']}; {', '.join(s['concepts']) or '-'}")
        for s in failed:
            self.stderr.write(f"skipped {s['error']}")
        self.stdout.write(f"explained {len(summaries) - len(failed)} image(s) into {out}")
