"""Emergence check: do object detectors emerge in the demo networks? (Network Dissection measure.)

For every unit of every layer: threshold at the unit's top-0.5% activation over a fresh set of
demo-world scenes, upsample bilinearly to the label-map size, pool IoU over the set with every
ground-truth label (objects, regions, parts, materials, colors, and the scene as a whole-image
label, as Broden does), and take the best-IoU label as the unit's automatic label.
"""

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from core.concepts import CATEGORY_SLUGS
from dissect.demo.training import to_input
from dissect.demo.world import LABELS, MAP_NAMES, render
from dissect.netdissect import (
    DEFAULT_QUANTILE,
    IoUAccumulator,
    RunningTopValues,
    best_labels,
    top_k_for_quantile,
)
from dissect.networks import ResolvedLayer, capture_outputs

LAYERS: tuple[str, ...] = ("conv1", "pool1", "conv2", "pool2", "conv3", "conv4", "conv5", "pool5")
IOU_LEVELS: tuple[float, ...] = (0.04, 0.2)


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
    progress: Callable[[int, int], None] | None = None,
) -> list[LayerEmergence]:
    """Run the emergence check of ``model`` on ``world`` for the layers {alias: module path}.

    Two passes over the images: the first finds each unit's top-quantile threshold exactly (the
    k largest activations, k from the number of activations), the second pools IoU counts.
    """
    model.eval()
    n = len(world.images)
    tops: dict[str, RunningTopValues] = {}
    accumulators: dict[str, IoUAccumulator] = {}
    batches = range(0, n, batch_size)
    total = 2 * len(batches)
    layers = [
        ResolvedLayer(alias, path, model.get_submodule(path)) for alias, path in layer_paths.items()
    ]
    with capture_outputs(layers) as outputs:
        for step, start in enumerate(batches):
            model(to_input(world.images[start : start + batch_size]))
            for alias, act in outputs.items():
                if alias not in tops:
                    _, units, h, w = act.shape
                    tops[alias] = RunningTopValues(units, top_k_for_quantile(n * h * w, quantile))
                tops[alias].add(act)
            if progress:
                progress(step + 1, total)
        thresholds = {alias: top.threshold() for alias, top in tops.items()}
        for step, start in enumerate(batches):
            model(to_input(world.images[start : start + batch_size]))
            maps = torch.from_numpy(world.label_maps[start : start + batch_size])
            for alias, act in outputs.items():
                if alias not in accumulators:
                    accumulators[alias] = IoUAccumulator(act.shape[1], len(LABELS))
                accumulators[alias].add_activations(act, thresholds[alias], maps)
            if progress:
                progress(len(batches) + step + 1, total)
    return [layer_emergence(alias, accumulators[alias].iou()) for alias in layer_paths]


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
