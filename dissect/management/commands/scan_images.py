"""``python manage.py scan_images NAME DIR [--manifest CSV]``: record a folder's images."""

from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Scan a folder (recursively) or a CSV manifest into an image set; bad files are listed."

    def add_arguments(self, parser):
        parser.add_argument("name", help="Image set name (a slug).")
        parser.add_argument("folder", help="Folder of images (paths are relative to it).")
        parser.add_argument("--manifest", help="CSV with a 'path' column (optional label, split).")
        parser.add_argument("--labels-dir", default="", help="Broden-like pixel labels, if any.")
        parser.add_argument("--show-bad", type=int, default=20, help="Bad files to list.")

    def handle(self, *args, name, folder, manifest, labels_dir, show_bad, **options):
        from tqdm import tqdm

        from dissect.models import Image
        from dissect.services import PipelineError, image_set_scan

        bar = tqdm(desc=f"scan {name}", unit="file")

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        try:
            image_set = image_set_scan(
                name=name, root=folder, manifest=manifest, labels_dir=labels_dir,
                progress=progress,
            )  # fmt: skip
        except PipelineError as exc:
            raise CommandError(str(exc)) from exc
        finally:
            bar.close()
        self.stdout.write(
            f"image set {image_set.name}: {image_set.image_count} images, "
            f"{image_set.bad_count} bad, manifest sha256 {image_set.manifest_sha256[:12]}"
        )
        bad = image_set.images.filter(status=Image.Status.BAD).order_by("path")[:show_bad]
        for image in bad:
            self.stdout.write(f"  bad: {image.path}: {image.reason}")
