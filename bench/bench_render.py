"""Rendering throughput: segmented tiles written per second by the pipeline's render stage.

Target (issue 4): >= 50 tiles/s on 2 CPU cores. The script builds a throwaway data folder
(SQLite, media, runs), dissects a small image set through the real services (extract + merge),
then times ``dissect.services.run_render`` and ``run_montages`` alone: re-running the listed images, building each
unit's mask, writing every tile (content-addressed JPEG) and one montage per unit.

    .venv/bin/python bench/bench_render.py [--images 200] [--layers features.3] [--top-k 20]
        [--segmentation quantile] [--threads 2]

Uses the demo network demo-places when its checkpoint is installed (--network demo-places),
else a seeded SqueezeNet 1.1 at 128 px (random weights: the work per tile is the same).
Prints one line per measurement and the ratio to the target, measured in this run.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TARGET_TILES_PER_S = 50.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--network", default="squeezenet", help="squeezenet or demo-places")
    parser.add_argument("--layers", default="")
    parser.add_argument("--top-k", type=int, default=20)
    parser.add_argument("--segmentation", default="quantile",
                        choices=("quantile", "activation", "rf-disk"))  # fmt: skip
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--parts", type=int, default=1,
                        help="Also render in this many processes at once, as that many cpu "
                             "workers would run a run's render parts, and compare.")  # fmt: skip
    parser.add_argument("--render-part", type=int, help=argparse.SUPPRESS)  # child process
    parser.add_argument("--run", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    args = parser.parse_args()

    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="bench-render-"))
    os.environ["CROWDDISSECT_DATA_DIR"] = str(work)
    os.environ.pop("CELERY_BROKER_URL", None)
    os.environ.pop("DATABASE_URL", None)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    sys.path.insert(0, str(REPO))
    import django

    django.setup()
    import torch
    from django.core.management import call_command

    torch.set_num_threads(args.threads)
    from dissect import services

    if args.render_part is not None:  # one render part, in its own process
        started = time.perf_counter()
        services.run_render(run_id=args.run, part=args.render_part, parts=args.parts)
        print(f"part-seconds {time.perf_counter() - started:.3f}")
        return 0
    call_command("migrate", verbosity=0)

    sys.path.insert(0, str(REPO / "tests" / "dissect" / "pipeline"))
    from conftest import write_images  # the test suite's tiny-image writer

    folder = work / "images"
    write_images(folder, args.images, size=128)
    if args.network == "demo-places":
        network = services.network_register(name="demo-places", arch="demo-places")
        layers = args.layers or "conv5"
    else:
        import torchvision

        torch.manual_seed(0)
        checkpoint = work / "squeezenet.pt"
        torch.save(torchvision.models.squeezenet1_1(num_classes=10).state_dict(), checkpoint)
        network = services.network_register(
            name="bench", arch="squeezenet1_1", checkpoint=checkpoint,
            class_names=[str(i) for i in range(10)],
            preprocessing={"input_size": 128, "resize": 128},
        )  # fmt: skip
        layers = args.layers or "features.3"
    image_set = services.image_set_scan(name="bench", root=folder)
    run = services.run_create(
        network=network, image_set=image_set, layers=layers.split(","), top_k=args.top_k,
        controls=3, shard_size=args.images, segmentation=args.segmentation, device="cpu",
    )  # fmt: skip
    started = time.perf_counter()
    services.shard_extract(run_id=run.pk, shard_index=0)
    services.run_merge(run_id=run.pk)
    prep_s = time.perf_counter() - started

    started = time.perf_counter()
    tiles = services.run_render(run_id=run.pk)
    services.run_montages(run_id=run.pk)
    render_s = time.perf_counter() - started
    rate = tiles / render_s
    units = sum(layer.unit_count for layer in run.layer_set.all())
    print(f"network {network.arch}, layers {layers}, {args.images} images, {units} units, "
          f"top-{args.top_k} + 3 controls, masks {args.segmentation}, torch threads {args.threads}")  # fmt: skip
    print(f"extract + merge: {prep_s:.1f} s")
    print(f"render: {tiles} tiles + {units} montages in {render_s:.1f} s = {rate:.0f} tiles/s")
    print(f"ratio to the {TARGET_TILES_PER_S:.0f} tiles/s target: {rate / TARGET_TILES_PER_S:.1f}x")
    if args.parts > 1:
        parallel_s = _render_in_processes(args, work, run.pk)
        print(f"render in {args.parts} processes ({max(1, args.threads // args.parts)} torch "
              f"threads each; slowest part + montages): {parallel_s:.1f} s = {tiles / parallel_s:.0f} tiles/s, "
              f"{render_s / parallel_s:.2f}x one process")  # fmt: skip
    return 0


def _render_in_processes(args, work: Path, run_id: int) -> float:
    """Seconds to render the run again as ``args.parts`` parts in as many processes (the
    slowest part, timed inside its process: a worker is started once, not per task), then the
    montages. The merge first clears the tiles, as a resumed run's would be."""
    import subprocess

    from dissect import services

    services.run_merge(run_id=run_id)
    command = [sys.executable, __file__, "--parts", str(args.parts), "--run", str(run_id),
               "--work", str(work), "--network", args.network,
               "--threads", str(max(1, args.threads // args.parts))]  # fmt: skip
    children = [
        subprocess.Popen(
            [*command, "--render-part", str(part)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        for part in range(args.parts)
    ]
    part_seconds = []
    for child in children:
        out, _ = child.communicate()
        if child.returncode:
            raise SystemExit("a render part failed")
        part_seconds.append(float(out.split("part-seconds")[-1]))
    started = time.perf_counter()
    services.run_montages(run_id=run_id)
    return max(part_seconds) + time.perf_counter() - started


if __name__ == "__main__":
    raise SystemExit(main())
