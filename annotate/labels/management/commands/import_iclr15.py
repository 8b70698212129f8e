from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from annotate.labels.iclr15 import PACKAGED_DIR, packaged_paths
from annotate.labels.importers import iclr15_import


class Command(BaseCommand):
    # URL and template checks are not needed to read or write labels.
    requires_system_checks: list[str] = []
    help = (
        "Import the ICLR'15 authors' released Mechanical Turk answers (unitAnnotation_*.mat): "
        "a network with its five layers and units (no images), three answers per unit, and the "
        "unit labels computed from them. Without a file, imports both files packaged with "
        "CrowdDissect (Places205-AlexNet and ImageNet-AlexNet)."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "file",
            nargs="*",
            help=f"unitAnnotation_<network>.mat (default: the packaged files in {PACKAGED_DIR})",
        )
        parser.add_argument(
            "--network",
            help="Network name to create (default: taken from the file name; one file only).",
        )
        parser.add_argument(
            "--replace",
            action="store_true",
            help="Delete a previously imported network of that name and import again.",
        )

    def handle(self, *args, file, network, replace, **options):
        paths = [Path(f) for f in file] or packaged_paths()
        if network and len(paths) != 1:
            raise CommandError("--network names one network: give exactly one file with it")
        for path in paths:
            self._import_one(path, network=network, replace=replace, verbosity=options["verbosity"])

    def _import_one(self, path: Path, *, network, replace, verbosity) -> None:
        bar = tqdm(total=0, unit="unit", desc="labels", disable=verbosity < 1)

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.n = done
            bar.refresh()

        try:
            result = iclr15_import(
                path=path, network_name=network, replace=replace, progress=progress
            )
        except (FileNotFoundError, ValueError) as exc:
            raise CommandError(str(exc)) from None
        finally:
            bar.close()
        self.stdout.write(
            self.style.SUCCESS(
                f"{path.name}: imported {result.answers} answers for {result.units} units in "
                f"{result.layers} layers (network id {result.network_id}, run {result.run_id}, "
                f"campaign {result.campaign_id}); {result.labels} unit labels computed."
            )
        )
