from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from annotate.labels.importers import iclr15_import


class Command(BaseCommand):
    # URL and template checks are not needed to read or write labels.
    requires_system_checks: list[str] = []
    help = (
        "Import the ICLR'15 authors' released Mechanical Turk answers (unitAnnotation_*.mat): "
        "a network with its five layers and units (no images), three answers per unit, and the "
        "unit labels computed from them."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", help="unitAnnotation_<network>.mat")
        parser.add_argument(
            "--network", help="Network name to create (default: taken from the file name)."
        )
        parser.add_argument(
            "--replace",
            action="store_true",
            help="Delete a previously imported network of that name and import again.",
        )

    def handle(self, *args, file, network, replace, **options):
        bar = tqdm(total=0, unit="unit", desc="labels", disable=options["verbosity"] < 1)

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.n = done
            bar.refresh()

        try:
            result = iclr15_import(
                path=Path(file), network_name=network, replace=replace, progress=progress
            )
        except (FileNotFoundError, ValueError) as exc:
            raise CommandError(str(exc)) from None
        finally:
            bar.close()
        self.stdout.write(
            self.style.SUCCESS(
                f"Imported {result.answers} answers for {result.units} units in {result.layers} "
                f"layers (network id {result.network_id}, run {result.run_id}, campaign "
                f"{result.campaign_id}); {result.labels} unit labels computed."
            )
        )
