"""The README's demo runs: the demo world dissected by demo-places and demo-objects."""

from __future__ import annotations

import json
import math
from pathlib import Path

from django.conf import settings

from dissect.models import DissectionRun, ImageSet
from dissect.services.common import Progress
from dissect.services.image_sets import image_set_scan
from dissect.services.networks import network_by_name
from dissect.services.runs import run_create, run_resume, run_start, run_wait

# The README demo's runs: (network, what it was trained on). The architectures themselves are
# dissect.networks.DEMO_NETWORKS.
DEMO_RUN_NETWORKS = (("demo-places", "scenes"), ("demo-objects", "objects"))
DEMO_LAYERS = ("conv5", "pool5")


def demo_runs_create(
    *, n_images: int = 1000, top_k: int = 60, progress: Progress | None = None
) -> list[DissectionRun]:
    """The README's demo: write the demo world (``DATA_DIR/demo-world``; scratch with S3), register demo-places
    and demo-objects, scan, and dissect conv5 and pool5 of both, with tiles. Idempotent: what
    exists (world files, networks, image set, finished runs) is reused."""
    from dissect.demo.world import write_demo_world
    from dissect.image_store import working_folder

    world = working_folder() / "demo-world"
    meta = world / "world.json"
    manifest = world / "manifest.csv"
    written = json.loads(meta.read_text()).get("n_images") if meta.is_file() else None
    if written != n_images:
        write_demo_world(world, n_images=n_images, seed=0, size=128, variant="scenes",
                         progress=progress)  # fmt: skip
        manifest.unlink(missing_ok=True)
    if not manifest.is_file():
        _demo_manifest_write(world, manifest)
    image_set = ImageSet.objects.filter(name="demo-world").first()
    if image_set is None or image_set.image_count != n_images:
        image_set = image_set_scan(
            name="demo-world",
            root=world / "images",
            manifest=manifest,
            labels_dir=world,
            description=f"Demo world, {n_images} procedural scenes at 128 px (seed 0).",
        )
    runs = []
    for name, _training in DEMO_RUN_NETWORKS:
        network = network_by_name(name)  # built in: BUILTIN_NETWORKS has its description
        run = (
            DissectionRun.objects.filter(
                network=network, image_set=image_set, layers=list(DEMO_LAYERS)
            )
            .exclude(status=DissectionRun.Status.IMPORTED)
            .order_by("-created_at")
            .first()
        )
        eager = settings.CELERY_TASK_ALWAYS_EAGER
        if run is None:
            run = run_create(
                network=network,
                image_set=image_set,
                layers=list(DEMO_LAYERS),
                top_k=top_k,
                shard_size=max(1, math.ceil(n_images / 2)),
                options={"auto_labels": True},  # the world has pixel labels: explain needs them
            )
            run_start(run=run)
        elif run.status != DissectionRun.Status.DONE and (
            eager or run.status != DissectionRun.Status.RUNNING
        ):
            # Failed, cancelled, or left "running" by a process that died (eager): continue it
            # from its stored shards; a run on live workers is simply waited for.
            run_resume(run=run)
        runs.append(run)
    return [run_wait(run=run) for run in runs]


def _demo_manifest_write(world: Path, manifest: Path) -> None:
    """A manifest of the demo world's photos (not its label-map PNGs), with scene and split."""
    import csv

    with open(world / "index.csv", newline="") as src, open(manifest, "w", newline="") as dst:
        writer = csv.writer(dst)
        writer.writerow(["path", "label", "split"])
        for row in csv.DictReader(src):
            writer.writerow([row["image"], row["class"], row["split"]])
