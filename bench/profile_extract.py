"""Where the one-pass extraction's CPU time goes, stage by stage, on batches held in memory.

    .venv/bin/python bench/profile_extract.py [--images 512] [--layers conv5] [--threads 1]

Decodes ``--images`` labeled demo-world images once (untimed), then times, in CPU seconds of
this process (less distorted by a loaded machine than wall time; ``--threads 1`` also avoids
thread-pool waits): the forward pass alone, then each statistic of ``UnitStats.add`` on the
captured activations: spatial max + top-K + controls, the kept maps, the quantile sketch, the
IoU counts (``BinnedIoU.add``), and the label decode. A diagnostic for engine work, not the
benchmark (``bench/bench_pipeline.py`` measures the whole job against the bare pass).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def cpu(fn, repeat: int = 1) -> float:
    started = time.process_time()
    for _ in range(repeat):
        fn()
    return (time.process_time() - started) / repeat


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--layers", default="conv5")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--world", default=str(ROOT / "var" / "bench-cache" / "demo-world-2000"))
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from dissect.autolabel import BrodenLabelLoader
    from dissect.broden import read_broden
    from dissect.engine import iter_labeled_batches
    from dissect.networks import load_network, resolve_layers
    from dissect.networks.layers import capture_outputs, run_until_captured

    net = load_network("demo-places")
    net.model.eval()
    dataset = read_broden(Path(args.world), check_files=False)
    rows = {}
    items = []
    for i, row in enumerate(dataset.rows[: args.images]):
        path = str(dataset.images_dir / row.image)
        items.append((i, path))
        rows[path] = (row.map_files, row.image_labels)
    size = 128
    loader = BrodenLabelLoader(dataset.images_dir, rows, net.preprocessing, size)
    layers = args.layers.split(",")
    resolved = resolve_layers(net, layers)

    decode = cpu(lambda: list(iter_labeled_batches(items, net.preprocessing, None,
                                                   batch_size=args.batch_size)))  # fmt: skip
    with_labels = cpu(lambda: list(iter_labeled_batches(items, net.preprocessing, loader,
                                                        batch_size=args.batch_size)))  # fmt: skip
    batches = list(iter_labeled_batches(items, net.preprocessing, loader,
                                        batch_size=args.batch_size))  # fmt: skip
    outputs = []

    def forward():
        outputs.clear()
        with torch.inference_mode(), capture_outputs(resolved, stop_early=True) as captured:
            for _ids, x, _maps, _has in batches:
                run_until_captured(net.model, x, captured)
                outputs.append({k: v.detach().float() for k, v in captured.items()})

    t_forward = cpu(forward)
    n = len(items)
    print(f"{n} images, layers {layers}, {args.threads} thread(s); CPU ms per image:")
    print(f"  decode + preprocess          {1000 * decode / n:7.2f}")
    print(f"  + label maps (loader)        {1000 * (with_labels - decode) / n:7.2f}")
    print(f"  forward                      {1000 * t_forward / n:7.2f}")
    for layer in layers:
        acts = [o[layer] for o in outputs]
        profile_layer(layer, acts, batches, n_labels=dataset.n_labels, size=size, n=n)


def profile_layer(layer: str, acts: list, batches: list, *, n_labels: int, size: int, n: int):
    """Print the CPU ms per image of each statistic on one layer's captured activations."""
    from dissect.engine.extract import LabelSpec, UnitStats, spatial_max
    from dissect.engine.topk import RunningTopK

    ids = [b[0] for b in batches]
    units, shape = acts[0].shape[1], tuple(acts[0].shape[2:])

    def topk(keep_maps):
        top = RunningTopK(20, units, largest=True, keep_maps=keep_maps)
        low = RunningTopK(3, units, largest=False, keep_maps=keep_maps)
        for a, i in zip(acts, ids, strict=True):
            scores, pos = spatial_max(a)
            top.add(scores, i, pos, a if keep_maps else None)
            low.add(scores, i, pos, a if keep_maps else None)

    stats = UnitStats.empty(layer, layer, units, shape, top_k=20, controls=3)

    def quantile():
        for a in acts:
            stats.quantile.add(a)

    t_topk = cpu(lambda: topk(False))
    t_maps = cpu(lambda: topk(True)) - t_topk
    t_quantile = cpu(quantile)
    # The window as a run places it: an eighth below the top-0.5 % level of these images.
    spec = LabelSpec(
        n_labels=n_labels, size=(size, size), window_thresholds={layer: stats.threshold(0.995)},
        below_fraction=0.125,
    )  # fmt: skip

    def iou():
        acc = spec.make(layer, units, "cpu")
        for a, b in zip(acts, batches, strict=True):
            acc.add(a, b[2], b[3])

    t_iou = cpu(iou)
    print(f"  {layer} ({units} units, {shape[0]}x{shape[1]}):")
    print(f"    max + top-K + controls     {1000 * t_topk / n:7.2f}")
    print(f"    kept maps                  {1000 * t_maps / n:7.2f}")
    print(f"    quantile sketch            {1000 * t_quantile / n:7.2f}")
    print(f"    IoU counts                 {1000 * t_iou / n:7.2f}")


if __name__ == "__main__":
    main()
