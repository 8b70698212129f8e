"""``python manage.py dissect``: dissect a network's layers over a folder of images, or show,
resume or cancel a run."""

from __future__ import annotations

import logging
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils.text import slugify

from dissect import services
from dissect.management.commands._pipeline_cli import follow, get_run, status_lines
from dissect.models import DissectionRun, ImageSet, Network
from dissect.parameters import RUN_OPTIONS, RUN_PARAMETERS
from dissect.services.networks import network_by_name

# dissect.parameters.RUN_OPTIONS the command line sets, with their ranges and help. Automatic
# labels come with the run's one pass when the image set has pixel labels (--no-auto-labels
# skips them; `auto_label RUN` for old runs).
ADVANCED_OPTIONS = tuple(name for name in RUN_OPTIONS.names() if name != "auto_labels")


class Command(BaseCommand):
    help = (
        "Dissect layers of a network over a folder of images (top-K images per unit, tiles and "
        "montages), or show (--status), resume (--resume) or cancel (--cancel) a run."
    )

    def add_arguments(self, parser):
        what = parser.add_argument_group("a new run")
        what.add_argument("--network", help="Registered network name (or a new one with --arch).")
        what.add_argument("--arch", help="Architecture, to register --network on the fly.")
        what.add_argument("--checkpoint", help="Weights file, with --arch.")
        what.add_argument("--classes", help="Class-name file, with --arch.")
        what.add_argument("--random-init", action="store_true",
                          help="With --arch and no --checkpoint: an untrained baseline.")  # fmt: skip
        what.add_argument("--images", help="Folder of images (scanned once; reused after). A "
                          "Broden-layout folder (index.csv beside or above images/) is imported "
                          "with its pixel labels.")  # fmt: skip
        what.add_argument("--manifest", help="CSV manifest (column 'path') inside --images.")
        what.add_argument("--rescan", action="store_true", help="Scan --images again.")
        what.add_argument("--layers", help="Comma-separated layer names, e.g. conv5,pool5.")
        # The run's parameters, from the one spec (the form's and the API's too); --batch-size
        # has no default here: with --resume it changes the run's (e.g. after a GPU out of memory).
        # --top-k has none either: left out, the default K is adapted to the image set's size.
        for param in RUN_PARAMETERS:
            no_default = param.name in ("batch_size", "top_k")
            param.add_argument(what, default=None if no_default else param.default)
        what.add_argument("--no-wait", action="store_true",
                          help="With a broker: enqueue and return instead of following.")  # fmt: skip
        advanced = parser.add_argument_group("advanced (defaults: the pipeline's)")
        for name in ADVANCED_OPTIONS:
            RUN_OPTIONS[name].add_argument(advanced, default=None)
        advanced.add_argument("--no-auto-labels", action="store_true",
                              help="Skip the automatic labels (computed in the same pass when "
                              "the image set has pixel labels).")  # fmt: skip
        other = parser.add_argument_group("an existing run").add_mutually_exclusive_group()
        other.add_argument("--status", type=int, metavar="RUN")
        other.add_argument("--resume", type=int, metavar="RUN")
        other.add_argument("--cancel", type=int, metavar="RUN")

    def handle(self, *args, **o):
        # In-process (eager) tasks would log one "Task ... succeeded" line between the bars.
        logging.getLogger("celery.app.trace").setLevel(logging.WARNING)
        try:
            if o["status"] is not None:
                self._print(get_run(o["status"]))
                return
            if o["cancel"] is not None:
                run = services.run_cancel(run=get_run(o["cancel"]))
                self.stdout.write(f"run {run.pk} cancelled; resume with --resume {run.pk}")
                return
            if o["resume"] is not None:
                run = get_run(o["resume"])
                if o["batch_size"] is not None:
                    run.parameters = {**run.parameters, "batch_size": int(o["batch_size"])}
                    run.save(update_fields=["parameters"])
                self._execute(run, lambda: services.run_resume(run=run), o["no_wait"])
                return
            run = self._create(o)
            self.stdout.write(
                f"run {run.pk}: {run.network.name} on {run.image_set.name} "
                f"({run.parameters['n_images']} images, {run.shards.count()} shards), "
                f"layers {', '.join(run.layers)}, top-{run.parameters['top_k']} + "
                f"{run.parameters['controls']} controls per unit"
            )
            for note in run.parameters.get("notes", []):
                self.stdout.write(self.style.WARNING(f"note: {note}"))
            self._execute(run, lambda: services.run_start(run=run), o["no_wait"])
        except services.PipelineError as exc:
            raise CommandError(str(exc)) from exc

    def _create(self, o) -> DissectionRun:
        missing = [f"--{name}" for name in ("network", "images", "layers") if not o[name]]
        if missing:
            raise CommandError(
                f"missing {', '.join(missing)}: e.g. `python manage.py dissect --network "
                "demo-places --images DIR --layers conv5,pool5` (or --status/--resume/--cancel RUN)"
            )
        images = Path(o["images"]).expanduser().resolve()
        if not images.is_dir():
            raise CommandError(f"--images {o['images']}: no such folder")
        network = self._network(o)
        image_set = self._image_set(images, o)
        return services.run_create(
            network=network,
            image_set=image_set,
            layers=o["layers"].split(","),
            top_k=o["top_k"],
            controls=o["controls"],
            shard_size=o["shard_size"],
            segmentation=o["segmentation"],
            receptive_field=o["receptive_field"],
            device=o["device"],
            tile_px=o["tile_px"],
            batch_size=o["batch_size"] or services.DEFAULTS["batch_size"],
            workers=o["workers"],
            seed=o["seed"],
            options={
                **{name: o[name] for name in ADVANCED_OPTIONS if o[name] is not None},
                **({"auto_labels": False} if o["no_auto_labels"] else {}),
            },
        )

    def _network(self, o) -> Network:
        from dissect.networks import DEMO_NETWORKS

        name = o["network"]
        network = Network.objects.filter(name=name).first()
        if o["arch"]:
            if network is None or o["checkpoint"] or network.arch != o["arch"]:
                self.stdout.write(f"registering network {name} ({o['arch']})")
                network = services.network_register(
                    name=name, arch=o["arch"], checkpoint=o["checkpoint"],
                    class_names=o["classes"], random_init=o["random_init"],
                )  # fmt: skip
            return network
        if network is not None:
            return network
        if name in DEMO_NETWORKS:
            return network_by_name(name)  # built in: registered on first use, as everywhere
        raise CommandError(
            f"unknown network {name!r}: register it first with `python manage.py "
            f"register_network {name} --arch ARCH --checkpoint FILE [--classes FILE]`, or pass "
            f"--arch (and --checkpoint) here. Registered: "
            f"{', '.join(Network.objects.values_list('name', flat=True)) or 'none'}; built in: "
            f"{', '.join(DEMO_NETWORKS)}"
        )

    def _image_set(self, folder: Path, o) -> ImageSet:
        broden = _broden_root(folder) if not o["manifest"] else None
        root = broden / "images" if broden else folder
        image_set = ImageSet.objects.filter(root=str(root)).first()
        if image_set is not None and not o["rescan"] and not o["manifest"]:
            return image_set
        if broden is not None:
            name = image_set.name if image_set else _unique_name(slugify(broden.name) or "broden")
            image_set = services.import_broden(root=broden, name=name)
            self.stdout.write(
                f"image set {image_set.name}: {image_set.image_count} images with pixel labels "
                f"from {broden} ({image_set.bad_count} bad files skipped)"
            )
            return image_set
        name = image_set.name if image_set else _unique_name(slugify(folder.name) or "images")
        image_set = services.image_set_scan(name=name, root=folder, manifest=o["manifest"])
        self.stdout.write(
            f"image set {image_set.name}: {image_set.image_count} images, "
            f"{image_set.bad_count} bad files skipped"
        )
        return image_set

    def _execute(self, run: DissectionRun, start, no_wait: bool) -> None:
        eager = settings.CELERY_TASK_ALWAYS_EAGER
        try:
            start()  # eager: the whole chord runs here, with progress bars
        except services.PipelineError:
            raise
        except Exception as exc:  # the run row already holds the error text
            run.refresh_from_db()
            self._print(run)
            raise CommandError(
                f"run {run.pk} failed: {run.error or exc}. Fix the cause, then "
                f"`python manage.py dissect --resume {run.pk}`"
            ) from exc
        if not eager and not no_wait:
            self.stdout.write("running on Celery workers (Ctrl-C stops watching, not the run)")
            follow(run)
        run.refresh_from_db()
        self._print(run)
        if run.status == DissectionRun.Status.FAILED:
            raise CommandError(f"run {run.pk} failed: {run.error}")

    def _print(self, run: DissectionRun) -> None:
        for line in status_lines(run):
            self.stdout.write(line)
        labels = run.progress.get("auto_label") or {}
        for key, text in (
            ("without_labels", "images without label maps (counted for top-K and quantiles, "
                               "not IoU)"),
            ("resized", "images whose label maps were resized (nearest)"),
            ("label_errors", "images whose label maps could not be read"),
            ("inexact_units", "units whose IoU is an estimate (threshold outside the IoU window)"),
        ):  # fmt: skip
            if labels.get(key):
                self.stdout.write(f"automatic labels: {labels[key]} {text}")
        if labels.get("note"):
            self.stdout.write(f"automatic labels: {labels['note']}")


def _broden_root(folder: Path) -> Path | None:
    """The Broden-layout dataset ``folder`` is (index.csv inside) or is the images/ of."""
    for root in (folder, folder.parent if folder.name == "images" else None):
        if root is not None and (root / "index.csv").is_file() and (root / "images").is_dir():
            return root
    return None


def _unique_name(base: str) -> str:
    name, n = base[:90], 2
    while ImageSet.objects.filter(name=name).exists():
        name, n = f"{base[:90]}-{n}", n + 1
    return name
