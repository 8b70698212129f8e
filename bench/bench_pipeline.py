"""The whole dissection job against the bare pass over the same images (issue 13's benchmark).

    .venv/bin/python bench/bench_pipeline.py [--rows conv5:10000,conv5:2000,six:10000,resnet18:1000]
        [--memory 2000,20000] [--device cpu|cuda] [--batch-size 64] [--workers 1] [--json FILE]

Rows are ``case:images``; cases: ``conv5`` (demo-places conv5), ``six`` (demo-places conv1-conv5 +
pool5 at once), ``resnet18`` (torchvision resnet18, random init, layer4, on a 224 px demo world).
For each row, on the same labeled demo-world images (seed 0; written once under ``--cache``),
with the same loader, batch size, workers and device:

(a) **bare pass**: decode (DataLoader workers), preprocess, forward through the network up to the
    deepest chosen layer's module, nothing kept. Timed inside this process after the model is
    loaded (no start-up).
(b) **whole job**: ``manage.py dissect`` as a user runs it, in a subprocess, timed from process
    start to exit: top-K, controls, quantiles, automatic labels (one pass), tiles, montages and
    database rows, in a fresh data directory (the image set is imported beforehand, untimed, as a
    user imports a dataset once). Peak RSS is the child's ``ru_maxrss`` (the largest process).

With ``--workers 0`` (decoding in the measuring process) it also prints both CPU times (user +
system) and their ratio, which a loaded machine distorts less than wall time.

Prints one line per row with both times and the ratio (whole / bare), the run's per-stage
seconds and the load average before and after (other processes share the machine), then a
markdown table; ``--memory`` adds the peak RSS of the conv5 whole job at each image count and its
ratio to the first. Not a test: nothing is asserted. ``--device cuda`` runs both on the GPU.
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
# case -> (network, --arch for a torchvision net or None, layers, demo-world image size)
CASES = {
    "conv5": ("demo-places", None, ["conv5"], 128),
    "six": ("demo-places", None, ["conv1", "conv2", "conv3", "conv4", "conv5", "pool5"], 128),
    "resnet18": ("bench-resnet18", "resnet18", ["layer4"], 224),
}


WRAPPER = (
    "import resource, subprocess, sys\n"
    "code = subprocess.run(sys.argv[2:]).returncode\n"
    "use = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
    "open(sys.argv[1], 'w').write(f'{use.ru_maxrss} {use.ru_utime + use.ru_stime}')\n"
    "sys.exit(code)\n"
)


def world(cache: Path, n: int, size: int = 128) -> Path:
    """The demo world of ``n`` images (seed 0, ``size`` px), written once per count and size."""
    root = cache / (f"demo-world-{n}" if size == 128 else f"demo-world-{n}-{size}px")
    if not (root / "index.csv").is_file():
        from dissect.demo.world import write_demo_world

        tmp = root.with_name(f".{root.name}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        write_demo_world(tmp, n_images=n, seed=0, size=size, variant="scenes")
        tmp.rename(root)
    return root


def warm_page_cache(root: Path) -> None:
    """Read every file of the world once, untimed: otherwise whichever of the bare pass and the
    job runs first pays the disk reads (a cold cache once made the bare pass 53 s against 33 s
    warm, flattering the ratio to 1.57x)."""
    for path in root.rglob("*"):
        if path.is_file():
            path.read_bytes()


def load_average() -> str:
    return " ".join(f"{v:.1f}" for v in os.getloadavg())


def bare_pass(root: Path, network: str, arch: str | None, layers: list[str], args):
    """(wall, CPU) seconds to decode, preprocess and forward every image, nothing kept. The CPU
    seconds are this process's: with ``--workers 0`` that includes the decoding."""
    import torch

    from dissect.broden import read_broden
    from dissect.engine import iter_labeled_batches, place_model
    from dissect.networks import load_network, resolve_layers
    from dissect.networks.layers import capture_outputs, run_until_captured

    net = load_network(arch or network)  # a torchvision arch: random init, as the job's
    device = place_model(net, args.device)
    dataset = read_broden(root, check_files=False)
    items = [(i, str(dataset.images_dir / r.image)) for i, r in enumerate(dataset.rows)]
    resolved = resolve_layers(net, layers)
    started, cpu_started = time.perf_counter(), time.process_time()
    with torch.inference_mode(), capture_outputs(resolved, stop_early=True) as captured:
        for _ids, x, _maps, _has in iter_labeled_batches(
            items, net.preprocessing, None, batch_size=args.batch_size, workers=args.workers
        ):
            run_until_captured(net.model, x.to(device), captured)
        if device.type == "cuda":
            torch.cuda.synchronize()
    return time.perf_counter() - started, time.process_time() - cpu_started


def whole_job(
    root: Path, network: str, arch: str | None, layers: list[str], args, data_dir: Path
) -> dict:
    """``manage.py dissect`` in a subprocess: seconds from start to exit, peak RSS, stages."""
    env = {**os.environ, "CROWDDISSECT_DATA_DIR": str(data_dir)}
    manage = [sys.executable, str(ROOT / "manage.py")]
    quiet = {"env": env, "cwd": ROOT, "check": True, "capture_output": True, "text": True}
    subprocess.run([*manage, "migrate", "-v", "0"], **quiet)
    subprocess.run([*manage, "import_broden", str(root), "--name", "bench"], **quiet)
    command = [
        *manage, "dissect", "--network", network,
        *(["--arch", arch, "--random-init"] if arch else []), "--images", str(root / "images"),
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
    usage = (data_dir / "rss.txt").read_text().split() if (data_dir / "rss.txt").is_file() else []
    rss, cpu = (float(usage[0]), float(usage[1])) if usage else (0.0, 0.0)
    if out.returncode:
        raise SystemExit(f"dissect failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    stages = [line.strip() for line in out.stdout.splitlines() if line.startswith("  ")]
    notes = [line for line in out.stdout.splitlines() if line.startswith("automatic labels")]
    return {
        "seconds": seconds,
        "cpu_s": cpu,  # user + system of the waited-for processes (decode workers: see main)
        "peak_rss_mb": rss / 1024,
        "stages": stages,
        "notes": notes,
    }


def run_row(case: str, n: int, args, cache: Path) -> dict:
    network, arch, layers, size = CASES[case]
    root = world(cache, n, size)
    warm_page_cache(root)
    load_before = load_average()
    bare, bare_cpu = bare_pass(root, network, arch, layers, args)
    with tempfile.TemporaryDirectory(dir=cache) as data_dir:
        job = whole_job(root, network, arch, layers, args, Path(data_dir))
    ratio = job["seconds"] / bare
    # CPU seconds compare like with like only when nothing decodes in other processes.
    cpu_ratio = job["cpu_s"] / bare_cpu if args.workers == 0 and bare_cpu else None
    row = {"case": case, "network": network, "layers": layers, "images": n, "size": size,
           "bare_s": bare, "bare_cpu_s": bare_cpu, **job, "ratio": ratio, "cpu_ratio": cpu_ratio,
           "load_before": load_before, "load_after": load_average()}  # fmt: skip
    cpu = f", CPU {bare_cpu:.1f} s vs {job['cpu_s']:.1f} s ({cpu_ratio:.2f}x)" if cpu_ratio else ""
    print(
        f"{network} {case} ({', '.join(layers)}), {n} images at {size} px, {args.device}, "
        f"batch {args.batch_size}, workers {args.workers}: bare pass {bare:.1f} s, "
        f"whole job {job['seconds']:.1f} s, ratio {ratio:.2f}x{cpu}, peak RSS "
        f"{job['peak_rss_mb']:.0f} MB (load average before {load_before}, after "
        f"{row['load_after']})",
        flush=True,
    )
    for line in job["stages"] + job["notes"]:
        print(f"    {line}", flush=True)
    return row


def table(results: list[dict]) -> str:
    lines = [
        "| case | images | bare pass (s) | whole job (s) | ratio | CPU s bare / job (ratio) | peak RSS (MB) | load avg before → after |",
        "| --- | ---: | ---: | ---: | ---: | --- | ---: | --- |",
    ]  # fmt: skip
    first_memory = next((r for r in results if r["case"] == "memory"), None)
    for r in results:
        if r["case"] == "memory":
            share = r["peak_rss_mb"] / first_memory["peak_rss_mb"]
            lines.append(
                f"| memory, conv5 whole job | {r['images']:,} | – | {r['seconds']:.1f} | – | – | "
                f"{r['peak_rss_mb']:.0f} ({share:.3f}× the {first_memory['images']:,}-image run) "
                f"| {r['load_before']} → {r['load_after']} |"
            )
            continue
        lines.append(
            f"| {r['network']} {', '.join(r['layers'])} ({r['size']} px) | {r['images']:,} | "
            f"{r['bare_s']:.1f} | {r['seconds']:.1f} | {r['ratio']:.2f}× | "
            + (
                f"{r['bare_cpu_s']:.1f} / {r['cpu_s']:.1f} ({r['cpu_ratio']:.2f}×) | "
                if r["cpu_ratio"]
                else "– | "
            )
            + f"{r['peak_rss_mb']:.0f} | {r['load_before']} → {r['load_after']} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", default="conv5:10000,conv5:2000,six:10000,resnet18:1000",
                        help=f"case:images, comma-separated; cases: {', '.join(CASES)}")  # fmt: skip
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda", "auto"))
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--shard-size", type=int, default=1000)
    parser.add_argument("--top-k", type=int, default=20)
    parser.add_argument("--iou-px", type=int, help="comparison size (default: the maps' own)")
    parser.add_argument("--no-auto-labels", action="store_true", help="whole job without labels")
    parser.add_argument("--memory", default="", help="image counts for peak RSS, e.g. 2000,20000")
    parser.add_argument("--cache", default=str(ROOT / "var" / "bench-cache"))
    parser.add_argument("--json", help="also write the results here (after every row)")
    args = parser.parse_args()
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    results = []

    def save() -> None:
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=1))

    for spec in [v for v in args.rows.split(",") if v]:
        case, _, n = spec.partition(":")
        results.append(run_row(case, int(n or 2000), args, cache))
        save()
    for n in [int(v) for v in args.memory.split(",") if v]:
        network, arch, layers, size = CASES["conv5"]
        load_before = load_average()
        with tempfile.TemporaryDirectory(dir=cache) as data_dir:
            job = whole_job(world(cache, n, size), network, arch, layers, args, Path(data_dir))
        results.append({"case": "memory", "images": n, **job, "load_before": load_before,
                        "load_after": load_average()})  # fmt: skip
        print(f"peak RSS at {n} images (conv5 whole job): {job['peak_rss_mb']:.0f} MB, "
              f"{job['seconds']:.1f} s", flush=True)  # fmt: skip
        save()
    print(table(results), flush=True)


if __name__ == "__main__":
    main()
