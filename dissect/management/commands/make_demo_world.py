"""Write demo-world images with their label maps in the Broden-like layout."""

from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = (
        "Render the demo world (procedural scenes with pixel labels) into OUT_DIR: images/, label "
        "PNGs, index.csv, labels.csv, world.json. Same arguments, same bytes."
    )

    def add_arguments(self, parser):
        parser.add_argument("out_dir", help="output directory (created if missing)")
        parser.add_argument("--n-images", type=int, default=1000)
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--size", type=int, default=128, help="image side in pixels")
        parser.add_argument("--variant", choices=("scenes", "objects"), default="scenes")

    def handle(self, *args, **opts):
        from tqdm import tqdm

        from dissect.demo.world import write_demo_world

        bar = tqdm(total=opts["n_images"], unit="img", disable=opts["verbosity"] == 0)

        def progress(done: int, total: int) -> None:
            bar.update(done - bar.n)

        try:
            out = write_demo_world(
                opts["out_dir"],
                n_images=opts["n_images"],
                seed=opts["seed"],
                size=opts["size"],
                variant=opts["variant"],
                progress=progress,
            )
        except (ValueError, OSError) as exc:
            raise CommandError(str(exc)) from exc
        finally:
            bar.close()
        self.stdout.write(f"wrote {opts['n_images']} {opts['variant']} images to {out}")
