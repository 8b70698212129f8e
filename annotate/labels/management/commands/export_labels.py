import shutil

from django.core.management.base import BaseCommand, CommandError

from annotate.labels.exports import EXTENSIONS, ExportError, export_create, export_run


class Command(BaseCommand):
    help = (
        "Export a network's labeled units (jsonl, csv, zip with tiles and a data card, tally, "
        "milan). Runs here and now; the Export row and its audit events are written as in the web."
    )
    # URL and template checks are not needed to read labels.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser):
        parser.add_argument("--network", required=True)
        parser.add_argument("--format", choices=list(EXTENSIONS), default="jsonl")
        parser.add_argument("--run", type=int, help="Run id (default: latest labeled run).")
        parser.add_argument("--layer", action="append", help="Only this layer (repeatable).")
        parser.add_argument("--detectors-only", action="store_true")
        parser.add_argument("--output", help="Also copy the file here.")

    def handle(self, *args, network, format, run, layer, detectors_only, output, **options):
        try:
            export = export_create(
                kind=format,
                parameters={
                    "network": network,
                    "run": run,
                    "layers": layer or [],
                    "detectors_only": detectors_only,
                },
                actor=None,
                enqueue=False,
            )
        except ExportError as exc:
            raise CommandError(str(exc)) from None
        export = export_run(export_id=export.pk)
        if output:
            from django.core.files.storage import default_storage

            with default_storage.open(export.file_path, "rb") as src, open(output, "wb") as dst:
                shutil.copyfileobj(src, dst)
        self.stdout.write(
            self.style.SUCCESS(
                f"Export {export.pk}: {export.progress.get('done', 0)} units, "
                f"{export.size_bytes} bytes -> {output or export.file_path}\n"
                f"sha256 {export.sha256}"
            )
        )
