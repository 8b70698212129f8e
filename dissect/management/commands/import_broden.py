"""``python manage.py import_broden DIR --name NAME``: a Broden-layout dataset as an image set."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = (
        "Check a dataset in the Broden layout (index.csv, label.csv, images/ with PNG label maps) "
        "and scan it into an image set with pixel labels, ready for automatic unit labels."
    )

    def add_arguments(self, parser):
        parser.add_argument("root", help="Dataset folder (holds index.csv).")
        parser.add_argument("--name", required=True, help="Image set name (a slug).")
        parser.add_argument("--description", default="")

    def handle(self, *args, **o):
        from django.utils.text import slugify

        from dissect.broden import BrodenError
        from dissect.services import PipelineError, import_broden

        name = slugify(o["name"])
        if not name:
            raise CommandError("--name must contain letters or digits")
        try:
            image_set = import_broden(root=o["root"], name=name, description=o["description"])
        except (BrodenError, PipelineError) as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(
            f"image set {image_set.name}: {image_set.image_count} images "
            f"({image_set.bad_count} bad), labels from {image_set.labels_dir}"
        )
