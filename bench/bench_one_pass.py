"""One pass vs today's passes on demo-world images at conv5 (a script, not a test).

    PYTHONPATH=. .venv/bin/python bench/bench_one_pass.py --images 500

Writes the images (PNG) and their object label maps (PNG) to a temp folder, then times:

- one pass: ``iter_labeled_batches`` (decode image + labels) -> ``extract_unit_stats`` with
  ``labels=LabelSpec`` and ``keep_maps=True`` (top-K + controls + quantile + IoU + maps);
- two passes as today: ``iter_image_batches`` -> ``extract_unit_stats`` (top-K + controls +
  quantile), then a second decode of images + labels and forward with
  ``IoUAccumulator.add_activations`` at the run's thresholds, then the render pass's forward over
  the distinct top-K / control images (``activation_maps``).

Checks the IoU matrices agree and prints seconds per stage.
"""

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from dissect.engine import LabelSpec, activation_maps, extract_unit_stats, iter_labeled_batches
from dissect.images import iter_image_batches, load_rgb, preprocess_transform
from dissect.netdissect import IoUAccumulator


def load_object_labels(image_id: int, path: str) -> np.ndarray:
    return np.asarray(Image.open(path.replace(".png", ".label.png")), dtype=np.int64)


def one_pass(net, layer, items, n_labels, bs, workers, kw, timed, below=0.5):
    def run():
        batches = iter_labeled_batches(
            items, net.preprocessing, load_object_labels, batch_size=bs, workers=workers
        )
        return extract_unit_stats(
            net,
            [layer],
            batches,
            labels=LabelSpec(n_labels, below_fraction=below),
            keep_maps=True,
            **kw,
        )[layer]

    one = timed("one", run)
    return None, one, one.iou_counts()


def two_pass(net, layer, items, n_labels, bs, workers, kw, timed):
    from dissect.networks import capture_outputs, resolve_layers

    def extract():
        batches = iter_image_batches(items, net.preprocessing, batch_size=bs, workers=workers)
        return extract_unit_stats(net, [layer], batches, **kw)[layer]

    two = timed("extract", extract)

    def iou():
        acc = IoUAccumulator(two.num_units, n_labels)
        (resolved,) = resolve_layers(net, [layer])
        with torch.inference_mode(), capture_outputs([resolved]) as captured:
            for _ids, images, maps, _ in iter_labeled_batches(
                items, net.preprocessing, load_object_labels, batch_size=bs, workers=workers
            ):
                net.model(images)
                acc.add_activations(captured[layer], two.threshold(0.995), maps)
        return acc

    acc = timed("iou", iou)
    ids = two.top.image_ids.flatten().tolist() + two.controls.image_ids.flatten().tolist()
    wanted = sorted(set(ids))

    def render():
        transform = preprocess_transform(net.preprocessing)
        x = torch.stack([transform(load_rgb(items[i][1])) for i in wanted])
        return activation_maps(net, layer, x, device="cpu")

    timed("render", render)
    return two, acc, wanted


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--layer", default="conv5")
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--top-k", type=int, default=60)
    parser.add_argument("--controls", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=2, help="best of N (shared machines)")
    parser.add_argument("--below", type=float, default=0.5, help="LabelSpec.below_fraction")
    args = parser.parse_args()

    from dissect.demo.emergence import render_labeled_world
    from dissect.demo.world import LABELS
    from dissect.networks import load_network

    net = load_network("demo-places")
    layer, n_labels = args.layer, len(LABELS)
    with tempfile.TemporaryDirectory() as tmp:
        world = render_labeled_world(n_images=args.images, seed=1, size=128)
        items = []
        for i in range(args.images):
            path = Path(tmp) / f"{i:05d}.png"
            Image.fromarray(world.images[i]).save(path)
            Image.fromarray(world.label_maps[i, 0]).save(Path(tmp) / f"{i:05d}.label.png")
            items.append((i, str(path)))
        kw = dict(top_k=args.top_k, controls=args.controls, device="cpu")
        bs, workers = args.batch_size, args.workers

        times: dict[str, float] = {}

        cpu: dict[str, float] = {}

        def timed(name, fn):
            # Wall clock and this process's CPU time (workers=0: decoding is in-process too);
            # CPU time is what other users of a shared machine disturb least.
            t0, c0 = time.perf_counter(), time.process_time()
            out = fn()
            times[name] = min(times.get(name, float("inf")), time.perf_counter() - t0)
            cpu[name] = min(cpu.get(name, float("inf")), time.process_time() - c0)
            return out

        for _ in range(args.repeat):
            # Alternate the two paths so slow spells of a shared machine hit both.
            t_one, one, one_iou = one_pass(
                net, layer, items, n_labels, bs, workers, kw, timed, args.below
            )
            two_pass_times = two_pass(net, layer, items, n_labels, bs, workers, kw, timed)
        t_one = times["one"]
        two, acc, wanted = two_pass_times
        t_extract, t_iou, t_render = times["extract"], times["iou"], times["render"]

    print("CPU seconds (best of repeats):", {k: round(v, 2) for k, v in cpu.items()})
    diff = float((one_iou.iou - acc.iou()).abs().max())
    print(
        f"{args.images} images, {layer}, batch {bs}, workers {workers}, {torch.get_num_threads()} threads"
    )
    print("wall seconds below (best of repeats)")
    print(f"one pass (decode + top-K + controls + quantile + IoU + maps): {t_one:.2f} s")
    print(
        f"two passes + render forward: {t_extract + t_iou + t_render:.2f} s "
        f"(extract {t_extract:.2f}, IoU pass {t_iou:.2f}, render forward of "
        f"{len(wanted)} images {t_render:.2f})"
    )
    print(
        f"max |dIoU| one vs two pass: {diff:.2e}; exact units {int(one_iou.exact.sum())}/{one.num_units}"
    )
    print(f"same top-K ids: {bool(torch.equal(one.top.image_ids, two.top.image_ids))}")


if __name__ == "__main__":
    main()
