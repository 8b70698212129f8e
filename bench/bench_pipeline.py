"""The whole dissection job against the bare pass over the same images (issue 13's benchmark).

    .venv/bin/python bench/bench_pipeline.py [--images 2000] [--layers conv5] [--device cpu]
        [--batch-size 64] [--workers 1] [--cases conv5,six] [--memory 2000,20000]

For each case, on the same labeled demo-world images (128 px, seed 0; written once under
``--cache``), with the same loader, batch size, workers and device:

(a) **bare pass**: decode (DataLoader workers), preprocess, forward through the network up to the
    deepest chosen layer's module, nothing kept. Timed inside this process after the model is
    loaded (no start-up).
(b) **whole job**: ``manage.py dissect`` as a user runs it, in a subprocess, timed from process
    start to exit: top-K, controls, quantiles, automatic labels (one pass), tiles, montages and
    database rows, in a fresh data directory (the image set is imported beforehand, untimed, as a
    user imports a dataset once). Peak RSS is the child's ``ru_maxrss`` (the largest process).

Prints one line per case with both times and the ratio (whole / bare), and the run's per-stage
seconds. Not a test: nothing is asserted. ``--device cuda`` runs both on the GPU.
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CASES = {"conv5": ["conv5"], "six": ["conv1", "conv2", "conv3", "conv4", "conv5", "pool5"]}


WRAPPER = (
    "import resource, subprocess, sys\n"
    "code = subprocess.run(sys.argv[2:]).returncode\n"
    "open(sys.argv[1], 'w').write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))\n"
    "sys.exit(code)\n"
)


def world(cache: Path, n: int) -> Path:
    """The demo world of ``n`` images (seed 0, 128 px), written once per size."""
    root = cache / f"demo-world-{n}"
    if not (root / "index.csv").is_file():
        from dissect.demo.world import write_demo_world

        tmp = cache / f".demo-world-{n}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        write_demo_world(tmp, n_images=n, seed=0, size=128, variant="scenes")
        tmp.rename(root)
    return root


def bare_pass(root: Path, layers: list[str], args) -> float:
    """Seconds to decode, preprocess and forward every image, nothing kept."""
    import torch

    from dissect.broden import read_broden
    from dissect.engine import iter_labeled_batches, place_model
    from dissect.networks import load_network, resolve_layers
    from dissect.networks.layers import capture_outputs, run_until_captured

    net = load_network(args.network)
    device = place_model(net, args.device)
    dataset = read_broden(root, check_files=False)
    items = [(i, str(dataset.images_dir / r.image)) for i, r in enumerate(dataset.rows)]
    resolved = resolve_layers(net, layers)
    started = time.perf_counter()
    with torch.inference_mode(), capture_outputs(resolved, stop_early=True) as captured:
        for _ids, x, _maps, _has in iter_labeled_batches(
            items, net.preprocessing, None, batch_size=args.batch_size, workers=args.workers
        ):
            run_until_captured(net.model, x.to(device), captured)
        if device.type == "cuda":
            torch.cuda.synchronize()
    return time.perf_counter() - started


def whole_job(root: Path, layers: list[str], args, data_dir: Path) -> dict:
    """``manage.py dissect`` in a subprocess: seconds from start to exit, peak RSS, stages."""
    env = {**os.environ, "CROWDDISSECT_DATA_DIR": str(data_dir)}
    manage = [sys.executable, str(ROOT / "manage.py")]
    quiet = {"env": env, "cwd": ROOT, "check": True, "capture_output": True, "text": True}
    subprocess.run([*manage, "migrate", "-v", "0"], **quiet)
    subprocess.run([*manage, "import_broden", str(root), "--name", "bench"], **quiet)
    command = [
        *manage, "dissect", "--network", args.network, "--images", str(root / "images"),
        "--layers", ",".join(layers), "--batch-size", str(args.batch_size),
        "--workers", str(args.workers), "--device", args.device,
        "--shard-size", str(args.shard_size), "--top-k", str(args.top_k),
        *(["--iou-px", str(args.iou_px)] if args.iou_px else []),
        *(["--no-auto-labels"] if args.no_auto_labels else []),
    ]  # fmt: skip
    # A small wrapper measures the peak RSS of this command's processes alone.
    wrapper = [sys.executable, "-c", WRAPPER, str(data_dir / "rss.txt")]
    started = time.perf_counter()
    out = subprocess.run([*wrapper, *command], env=env, cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    rss = float((data_dir / "rss.txt").read_text()) if (data_dir / "rss.txt").is_file() else 0
    if out.returncode:
        raise SystemExit(f"dissect failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    stages = [line.strip() for line in out.stdout.splitlines() if line.startswith("  ")]
    notes = [line for line in out.stdout.splitlines() if line.startswith("automatic labels")]
    return {
        "seconds": seconds,
        "peak_rss_mb": rss / 1024,
        "stages": stages,
        "notes": notes,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--cases", default="conv5,six", help=f"of {', '.join(CASES)}")
    parser.add_argument("--network", default="demo-places")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda", "auto"))
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--shard-size", type=int, default=1000)
    parser.add_argument("--top-k", type=int, default=20)
    parser.add_argument("--iou-px", type=int, help="comparison size (default: the maps', 128)")
    parser.add_argument("--no-auto-labels", action="store_true", help="whole job without labels")
    parser.add_argument("--memory", default="", help="image counts for peak RSS, e.g. 2000,20000")
    parser.add_argument("--cache", default=str(ROOT / "var" / "bench-cache"))
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    results = []
    root = world(cache, args.images)
    for case in args.cases.split(","):
        layers = CASES[case]
        bare = bare_pass(root, layers, args)
        with tempfile.TemporaryDirectory(dir=cache) as data_dir:
            job = whole_job(root, layers, args, Path(data_dir))
        ratio = job["seconds"] / bare
        results.append({"case": case, "images": args.images, "bare_s": bare, **job, "ratio": ratio})
        print(
            f"{args.network} {case} ({', '.join(layers)}), {args.images} images, {args.device}, "
            f"batch {args.batch_size}, workers {args.workers}: bare pass {bare:.1f} s, "
            f"whole job {job['seconds']:.1f} s, ratio {ratio:.2f}x, peak RSS "
            f"{job['peak_rss_mb']:.0f} MB",
            flush=True,
        )
        for line in job["stages"] + job["notes"]:
            print(f"    {line}")
    for n in [int(v) for v in args.memory.split(",") if v]:
        with tempfile.TemporaryDirectory(dir=cache) as data_dir:
            job = whole_job(world(cache, n), CASES["conv5"], args, Path(data_dir))
        results.append({"case": "memory", "images": n, **job})
        print(f"peak RSS at {n} images (conv5): {job['peak_rss_mb']:.0f} MB, "
              f"{job['seconds']:.1f} s", flush=True)  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
