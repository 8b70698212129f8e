"""Extraction benchmarks: measured in one run, printed as ratios (not timed tests).

    python bench/bench_extraction.py              # everything (about 10-15 min on 2 CPU cores)
    python bench/bench_extraction.py --only throughput memory baseline rf
    python bench/bench_extraction.py --quick      # smaller sizes, for a smoke run

1. throughput: extract_unit_stats vs the bare forward pass of the same network on the same
   batches in the same process (alternating batch by batch; wall-clock and process-CPU-time
   ratios; each hooked batch is a fresh extract_unit_stats call, so setup is included).
   Target ratio >= 0.85.
2. memory: peak RSS of extraction over 2,000 vs 20,000 images, each in its own subprocess.
   Target: within 10 %.
3. baseline: against storing every feature map (float32 memmap N x C x H x W, as
   NetDissect-Lite does) and computing top-K and the 0.995 quantile afterwards: time and disk.
4. rf: empirical receptive fields of a 64-unit layer of the demo network, top-20 images per
   unit, 11 px occluder on a stride-6 grid, 2 CPU threads. Target: < 10 minutes.

Inputs are synthetic random image tensors (seeded), so JPEG decoding does not dominate and
the numbers measure the network and the engine only. The demo network is the trained one when
its checkpoint exists, else the same architecture (dissect.demo.architecture) with random
weights: speed and memory do not depend on the weight values.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from dissect.engine import UnitStats, estimate_receptive_fields, extract_unit_stats  # noqa: E402
from dissect.networks import (  # noqa: E402
    LoadedNetwork,
    NetworkLoadError,
    forward_hooks,
    load_network,
    resolve_layers,
)


def demo_network() -> tuple[LoadedNetwork, str]:
    try:
        return load_network("demo-places"), "demo-places (trained checkpoint)"
    except NetworkLoadError:
        pass
    from dissect.demo.architecture import LAYER_ALIASES, DemoAlexNet
    from dissect.demo.training import preprocessing

    torch.manual_seed(0)
    net = LoadedNetwork(
        model=DemoAlexNet(10).eval(),
        arch="demo-alexnet",
        class_names=[str(i) for i in range(10)],
        preprocessing=preprocessing(),
        layer_aliases=dict(LAYER_ALIASES),
    )
    return net, "demo AlexNet-style architecture, random weights (checkpoint not built)"


def resnet18_128() -> tuple[LoadedNetwork, str]:
    torch.manual_seed(0)
    return load_network("resnet18", preprocessing={"input_size": 128}), "resnet18, 128 px"


def synthetic_batches(n_images: int, batch_size: int, size: int, seed: int = 0):
    """Seeded random 'images' generated on the fly (nothing held beyond one batch)."""
    g = torch.Generator().manual_seed(seed)
    for start in range(0, n_images, batch_size):
        n = min(batch_size, n_images - start)
        yield torch.arange(start, start + n), torch.randn(n, 3, size, size, generator=g)


# -- 1. throughput ------------------------------------------------------------------------------


def bare_forward(net: LoadedNetwork, batches) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) of the forward passes alone."""
    wall, cpu = time.perf_counter(), time.process_time()
    with torch.inference_mode():
        for _, x in batches:
            net.model(x)
    return time.perf_counter() - wall, time.process_time() - cpu


ENGINE_SECONDS = [0.0]  # wall time spent inside UnitStats.add (the engine's per-batch work)


def _timed_add(add):
    def timed(self, activations, image_ids):
        start = time.perf_counter()
        add(self, activations, image_ids)
        ENGINE_SECONDS[0] += time.perf_counter() - start

    return timed


UnitStats.add = _timed_add(UnitStats.add)


def hooked_extract(net: LoadedNetwork, layers, batches, top_k: int) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    extract_unit_stats(net, layers, iter(batches), top_k=top_k, device="cpu")
    return time.perf_counter() - wall, time.process_time() - cpu


def throughput(quick: bool) -> list[dict]:
    rows = []
    cases = [
        (demo_network, 64, 4 if quick else 8, [["conv5"], ["conv1", "conv2", "conv3", "conv4",
                                                          "conv5", "pool5"]]),
        (resnet18_128, 32, 2 if quick else 6, [["layer4"], ["layer1", "layer2", "layer3",
                                                            "layer4"]]),
    ]  # fmt: skip
    repeats = 2 if quick else 3
    for make, batch_size, n_batches, layer_sets in cases:
        net, label = make()
        batches = list(synthetic_batches(batch_size * n_batches, batch_size, net.input_size))
        bare_forward(net, batches[:1])  # warm-up (allocator, oneDNN kernels)
        hooked_extract(net, layer_sets[0], batches[:1], 60)
        for layers in layer_sets:
            # Alternate bare and hooked passes batch by batch (order flipped each time), so
            # load from other processes on the shared cores hits both alike.
            bare_wall = bare_cpu = hooked_wall = hooked_cpu = 0.0
            ENGINE_SECONDS[0] = 0.0
            for r in range(repeats):
                for i, batch in enumerate(batches):
                    bare_first = (r + i) % 2 == 0
                    for which in ("bare", "hooked") if bare_first else ("hooked", "bare"):
                        if which == "bare":
                            wall, cpu = bare_forward(net, [batch])
                            bare_wall, bare_cpu = bare_wall + wall, bare_cpu + cpu
                        else:
                            wall, cpu = hooked_extract(net, layers, [batch], 60)
                            hooked_wall, hooked_cpu = hooked_wall + wall, hooked_cpu + cpu
            images = batch_size * n_batches * repeats
            row = {
                "network": label,
                "layers": "+".join(layers),
                "images": images,
                "bare_img_s": images / bare_wall,
                "extract_img_s": images / hooked_wall,
                # CPU seconds of this process: less sensitive to other processes' load.
                "cpu_ratio": bare_cpu / hooked_cpu,
                # Share of the hooked run spent in the engine's own work (top-K, controls,
                # quantile sketch), timed inside the hook: the least load-sensitive measure.
                "engine_share": ENGINE_SECONDS[0] / hooked_wall,
            }
            row["ratio"] = row["extract_img_s"] / row["bare_img_s"]
            rows.append(row)
            print(
                f"  {label[:40]:<40} {row['layers']:<38} bare {row['bare_img_s']:6.1f} img/s  "
                f"extract {row['extract_img_s']:6.1f} img/s  ratio {row['ratio']:.2f} (wall) "
                f"{row['cpu_ratio']:.2f} (CPU time); engine work {row['engine_share']:.1%} "
                f"of the hooked time",
                flush=True,
            )
    return rows


# -- 2. memory ----------------------------------------------------------------------------------


def _proc_status_kb(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def memory_child(n_images: int) -> None:
    """Run in a subprocess: extraction over n synthetic images; print memory as JSON.

    The peak is the resident-set high-water mark during extraction only (Linux: reset through
    /proc/self/clear_refs before starting; elsewhere the process-lifetime ru_maxrss)."""
    torch.set_num_threads(2)
    net, label = demo_network()
    layers = ["conv1", "conv3", "conv5", "pool5"]
    # Warm-up batch so allocator pools and kernels exist before the measured run.
    extract_unit_stats(net, layers, synthetic_batches(100, 100, net.input_size), device="cpu")
    rss_before_kb = _proc_status_kb("VmRSS") or 0
    try:
        Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
        source = "VmHWM during extraction"
    except OSError:
        source = "ru_maxrss (process lifetime)"
    start = time.perf_counter()
    stats = extract_unit_stats(
        net, layers, synthetic_batches(n_images, 100, net.input_size), top_k=60, device="cpu"
    )
    elapsed = time.perf_counter() - start
    peak_kb = _proc_status_kb("VmHWM") if source.startswith("VmHWM") else None
    if peak_kb is None:
        peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    state_bytes = 0
    for s in stats.values():
        with tempfile.NamedTemporaryFile() as fh:
            s.save(fh.name)
            state_bytes += os.path.getsize(fh.name)
    print(json.dumps({
        "images": n_images, "network": label, "layers": layers, "seconds": elapsed,
        "peak_rss_mb": peak_kb / 1024, "rss_before_mb": rss_before_kb / 1024,
        "state_mb": state_bytes / 2**20, "peak_source": source,
    }))  # fmt: skip


def memory(quick: bool) -> list[dict]:
    sizes = (200, 2000) if quick else (2000, 20000)
    rows = []
    for n in sizes:
        out = subprocess.run(
            [sys.executable, __file__, "--memory-child", str(n)],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        row = json.loads(out.stdout.strip().splitlines()[-1])
        rows.append(row)
        print(
            f"  {n:>6} images: peak RSS {row['peak_rss_mb']:7.1f} MB ({row['peak_source']}; "
            f"RSS at start {row['rss_before_mb']:.1f} MB), stats files {row['state_mb']:.2f} MB, "
            f"{row['seconds']:.0f} s",
            flush=True,
        )
    small, big = rows
    growth = big["peak_rss_mb"] / small["peak_rss_mb"] - 1
    print(f"  peak RSS {sizes[1]} vs {sizes[0]} images: {growth:+.1%}", flush=True)
    return rows


# -- 3. store-every-feature-map baseline --------------------------------------------------------


def store_everything(net, layer, batches, n_images, top_k, folder: Path) -> tuple[float, int]:
    """NetDissect-Lite style: write every feature map to a float32 memmap, then compute per-unit
    top-K of spatial maxima and the 0.995 quantile of all values from the stored maps."""
    (resolved,) = resolve_layers(net, [layer])
    start = time.perf_counter()
    store: dict[str, np.memmap] = {}
    cursor = [0]

    def write(_layer, output):
        if "maps" not in store:
            shape = (n_images, *output.shape[1:])
            store["maps"] = np.lib.format.open_memmap(
                folder / "features.npy", mode="w+", dtype=np.float32, shape=shape
            )
        n = output.shape[0]
        store["maps"][cursor[0] : cursor[0] + n] = output.float().numpy()
        cursor[0] += n

    with torch.inference_mode(), forward_hooks([resolved], write):
        for _, x in batches:
            net.model(x)
    maps = store["maps"]
    maps.flush()
    units = maps.shape[1]
    # Pass 2 over the stored maps: per-image maxima -> top-K; all values -> quantile.
    maxima = np.empty((n_images, units), dtype=np.float32)
    for lo in range(0, n_images, 500):
        maxima[lo : lo + 500] = (
            maps[lo : lo + 500].reshape(min(500, n_images - lo), units, -1).max(2)
        )
    torch.topk(torch.from_numpy(maxima).t(), top_k, dim=1)
    for u0 in range(0, units, 32):
        values = torch.from_numpy(np.ascontiguousarray(maps[:, u0 : u0 + 32]))
        values = values.transpose(0, 1).reshape(values.shape[1], -1)
        k = int(np.ceil(0.995 * values.shape[1]))
        torch.kthvalue(values, k, dim=1)
    elapsed = time.perf_counter() - start
    disk = os.path.getsize(folder / "features.npy")
    return elapsed, disk


def baseline(quick: bool) -> list[dict]:
    rows = []
    n_images = 500 if quick else 2000
    for make, layer, batch_size in ((demo_network, "conv5", 100), (resnet18_128, "layer4", 50)):
        net, label = make()
        if quick and make is resnet18_128:
            n_images = 200
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            batches = synthetic_batches(n_images, batch_size, net.input_size)
            t_store, disk_store = store_everything(net, layer, batches, n_images, 60, folder)
            start = time.perf_counter()
            stats = extract_unit_stats(
                net, [layer], synthetic_batches(n_images, batch_size, net.input_size),
                top_k=60, device="cpu",
            )  # fmt: skip
            stats[layer].save(folder / "shard.pt")
            t_stream = time.perf_counter() - start
            disk_stream = os.path.getsize(folder / "shard.pt")
            UnitStats.load(folder / "shard.pt")
        row = {
            "network": label, "layer": layer, "images": n_images,
            "store_s": t_store, "store_disk_mb": disk_store / 2**20,
            "stream_s": t_stream, "stream_disk_mb": disk_stream / 2**20,
        }  # fmt: skip
        rows.append(row)
        print(
            f"  {label:<70} {layer}, {n_images} images: store-every-map {t_store:6.1f} s "
            f"{row['store_disk_mb']:8.1f} MB | streaming {t_stream:6.1f} s "
            f"{row['stream_disk_mb']:6.2f} MB (disk x{disk_store / disk_stream:.0f} smaller; "
            f"grows with N for the baseline, constant for streaming)",
            flush=True,
        )
    return rows


# -- 4. empirical receptive field ---------------------------------------------------------------


def rf_networks() -> list[tuple[LoadedNetwork, str, str]]:
    """(net, label, layer) cases: the demo network's 64-unit layer; when it has none, its
    pool1 and the demo architecture with conv1 widened to 64 units (random weights)."""
    from dissect.networks import layer_table

    net, label = demo_network()
    for row in layer_table(net):
        if row.units == 64 and row.receptive_field_px:
            return [(net, label, row.alias)]
    from dissect.demo.architecture import DEFAULT_WIDTHS, DemoAlexNet

    torch.manual_seed(0)
    widths = (64, *DEFAULT_WIDTHS[1:])
    wide = LoadedNetwork(
        model=DemoAlexNet(10, widths).eval(), arch="demo-alexnet", class_names=list("abcdefghij"),
        preprocessing=net.preprocessing, layer_aliases=net.layer_aliases,
    )  # fmt: skip
    wide_label = f"demo architecture, widths {widths}, random weights"
    return [(net, label, "pool1"), (wide, wide_label, "pool1")]


def rf(quick: bool) -> list[dict]:
    torch.set_num_threads(2)
    rows = []
    for net, label, layer in rf_networks():
        pool_images = 200 if quick else 2000
        images = torch.randn(pool_images, 3, net.input_size, net.input_size,
                             generator=torch.Generator().manual_seed(1))  # fmt: skip
        stats = extract_unit_stats(
            net, [layer], [(torch.arange(pool_images), images)], top_k=20, device="cpu"
        )[layer]
        unit_images = {u: stats.top.image_ids[u].tolist() for u in range(stats.num_units)}
        distinct = len({i for ids in unit_images.values() for i in ids})
        start = time.perf_counter()
        result = estimate_receptive_fields(
            net, layer, unit_images, lambda i, images=images: images[i], patch_px=11,
            stride_px=6, batch_size=256, device="cpu",
        )  # fmt: skip
        elapsed = time.perf_counter() - start
        print(
            f"  {label}, {layer} ({stats.num_units} units, top-20 each from {pool_images} "
            f"images: {distinct} distinct), 11 px occluder, stride 6, 2 threads: {elapsed:.1f} s;"
            f" empirical RF {result.mean_px:.1f} +- {result.std_px:.1f} px",
            flush=True,
        )
        rows.append({"network": label, "layer": layer, "units": stats.num_units,
                     "distinct_images": distinct, "seconds": elapsed,
                     "mean_px": result.mean_px, "std_px": result.std_px})  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="*", default=["throughput", "memory", "baseline", "rf"])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--memory-child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        memory_child(args.memory_child)
        return
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs")
    sections = {"throughput": throughput, "memory": memory, "baseline": baseline, "rf": rf}
    for name in args.only:
        print(f"\n== {name}", flush=True)
        sections[name](args.quick)


if __name__ == "__main__":
    main()
