"""Emergence check: do object detectors emerge in the demo networks? (Network Dissection measure.)

For every unit of every layer: threshold at the unit's top-0.5% activation (``quantile=0.995``)
over a fresh set of demo-world scenes, upsample bilinearly to the label-map size, pool IoU over the
set with every ground-truth label (objects, regions, parts, materials, colors, and the scene as a
whole-image label, as Broden does), and take the best-IoU label as the unit's automatic label.
The counting is the pipeline's own engine piece (``dissect.engine``: one pass, ``BinnedIoU``).
"""

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from core.concepts import CATEGORY_SLUGS
from dissect.demo.training import to_input
from dissect.demo.world import LABELS, MAP_NAMES, render
from dissect.netdissect import DEFAULT_QUANTILE, best_labels
from dissect.networks import ResolvedLayer, capture_outputs

LAYERS: tuple[str, ...] = ("conv1", "pool1", "conv2", "pool2", "conv3", "conv4", "conv5", "pool5")
IOU_LEVELS: tuple[float, ...] = (0.04, 0.2)
WINDOW_SAMPLE = 256  # scenes whose quantile sketch places the IoU windows


@dataclass
class LabeledWorld:
    """Rendered scenes in memory: images (N, H, W, 3) uint8 and label maps (N, 5, H, W) uint8
    (object, part, material, color, scene-as-whole-image)."""

    images: np.ndarray
    label_maps: np.ndarray


def render_labeled_world(*, n_images: int, seed: int, size: int = 128) -> LabeledWorld:
    """Render ``n_images`` scenes with their label maps (scene label filled over the whole image)."""
    images = np.empty((n_images, size, size, 3), np.uint8)
    maps = np.empty((n_images, len(MAP_NAMES) + 1, size, size), np.uint8)
    scene_number = {lab.name: lab.number for lab in LABELS if lab.category == "scene"}
    for i in range(n_images):
        sample = render(seed, i, size=size, variant="scenes")
        images[i] = sample.image
        for j, name in enumerate(MAP_NAMES):
            maps[i, j] = getattr(sample, name)
        maps[i, -1] = scene_number[sample.scene]
    return LabeledWorld(images, maps)


@dataclass
class LayerEmergence:
    layer: str
    n_units: int
    best_label: list[int]
    best_iou: list[float]
    counts: dict[float, dict[str, int]] = field(default_factory=dict)  # level -> category -> units
    objects: dict[float, list[str]] = field(default_factory=dict)  # level -> distinct objects

    def unit_labels(self) -> list[dict]:
        return [
            {
                "unit": u,
                "label": LABELS[lab].name,
                "category": LABELS[lab].category,
                "iou": round(iou, 4),
            }
            for u, (lab, iou) in enumerate(zip(self.best_label, self.best_iou, strict=True))
        ]


def layer_emergence(layer: str, iou: torch.Tensor) -> LayerEmergence:
    """Summarize a (units, labels) IoU matrix: best labels, units per category per IoU level."""
    labels, values = best_labels(iou)
    result = LayerEmergence(layer, iou.shape[0], labels.tolist(), values.tolist())
    for level in IOU_LEVELS:
        per_category = dict.fromkeys(CATEGORY_SLUGS, 0)
        objects: set[str] = set()
        for lab, value in zip(result.best_label, result.best_iou, strict=True):
            if value >= level:
                label = LABELS[lab]
                per_category[label.category] += 1
                if label.category == "object":
                    objects.add(label.name)
        result.counts[level] = per_category
        result.objects[level] = sorted(objects)
    return result


@torch.inference_mode()
def network_emergence(
    *,
    model: torch.nn.Module,
    layer_paths: dict[str, str],
    world: LabeledWorld,
    quantile: float = DEFAULT_QUANTILE,
    batch_size: int = 50,
    denominator: str = "plain",
    device: str | torch.device = "auto",
    progress: Callable[[int, int], None] | None = None,
) -> list[LayerEmergence]:
    """Run the emergence check of ``model`` on ``world`` for the layers {alias: module path}.

    One pass, with the engine piece the pipeline's automatic labels use (``UnitStats`` with a
    ``LabelSpec``: quantile sketch + ``BinnedIoU`` counts at the label maps' size): each unit's
    threshold is its activations' ``quantile`` level from the sketch (within 0.78 % of the exact
    k-th largest value), and the IoU counts at that threshold are exact. ``denominator``:
    "plain" or NetDissect's "category" union (see ``dissect.engine.iou``).
    """
    from dissect.engine.extract import LabelSpec, UnitStats, place_model
    from dissect.engine.quantile import RunningQuantile
    from dissect.networks import LoadedNetwork

    dev = place_model(LoadedNetwork(model=model, arch="demo", class_names=[],
                                    preprocessing={}, layer_aliases={}), device)  # fmt: skip
    n = len(world.images)
    size = tuple(int(v) for v in world.label_maps.shape[2:])
    categories = {c: i for i, c in enumerate(sorted({lab.category for lab in LABELS[1:]}))}
    label_category = torch.tensor([-1] + [categories[lab.category] for lab in LABELS[1:]])
    stats: dict[str, UnitStats] = {}
    batches = range(0, n, batch_size)
    layers = [
        ResolvedLayer(alias, path, model.get_submodule(path)) for alias, path in layer_paths.items()
    ]
    # As the pipeline: the IoU windows are centered on the quantile of a sample spread over the
    # images (a forward pass only, the scenes are in memory), starting a quarter octave below it
    # (``dissect.services.extraction.IOU_BELOW_FRACTION``) when the sample is not every scene.
    sample = world.images[:: max(1, n // WINDOW_SAMPLE)][:WINDOW_SAMPLE]
    sketches: dict[str, RunningQuantile] = {}
    with capture_outputs(layers) as outputs:
        for start in range(0, len(sample), batch_size):
            model(to_input(sample[start : start + batch_size]).to(dev))
            for alias, act in outputs.items():
                sketches.setdefault(alias, RunningQuantile(act.shape[1], device=dev)).add(act)
    window = {alias: sketch.quantile(quantile) for alias, sketch in sketches.items()}
    # A sample of every scene already knows the final thresholds: the window then starts just
    # below them (4 bins, 2 %, for fp32 noise between batchings) instead of a quarter octave, and
    # counts far fewer pixels.
    below = 4 / 256 if len(sample) == n else 0.125
    spec = LabelSpec(n_labels=len(LABELS), label_category=label_category,
                     denominator=denominator, size=size, level=quantile,
                     window_thresholds=window, below_fraction=below)  # fmt: skip
    with capture_outputs(layers) as outputs:
        for step, start in enumerate(batches):
            model(to_input(world.images[start : start + batch_size]).to(dev))
            maps = torch.from_numpy(world.label_maps[start : start + batch_size]).to(dev)  # uint8
            ids = torch.arange(start, start + maps.shape[0], device=dev)
            for alias, act in outputs.items():
                if alias not in stats:
                    path = layer_paths[alias]
                    stats[alias] = UnitStats.empty(alias, path, act.shape[1], act.shape[2:4],
                                                   top_k=1, controls=1, device=dev, labels=spec)  # fmt: skip
                stats[alias].add(act.float(), ids, maps)
            if progress:
                progress(step + 1, len(batches))
    return [layer_emergence(alias, stats[alias].iou_counts().iou) for alias in layer_paths]


def emergence_table(results: dict[str, list[LayerEmergence]]) -> str:
    """A Markdown table: per network and layer, units with IoU >= each level, by category."""
    cats = list(CATEGORY_SLUGS)
    lines = []
    for level in IOU_LEVELS:
        lines.append(f"\nUnits whose best label has IoU >= {level} (by the label's category):\n")
        lines.append(
            "| network | layer | units | " + " | ".join(cats) + " | total | distinct objects |"
        )
        lines.append("|" + "---|" * (len(cats) + 5))
        for network, layers in results.items():
            for layer in layers:
                counts = layer.counts[level]
                objects = layer.objects[level]
                lines.append(
                    f"| {network} | {layer.layer} | {layer.n_units} | "
                    + " | ".join(str(counts[c]) for c in cats)
                    + f" | {sum(counts.values())} | {len(objects)}"
                    + (f": {', '.join(objects)}" if objects else "")
                    + " |"
                )
    return "\n".join(lines) + "\n"
