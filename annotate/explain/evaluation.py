"""How well do labeled units detect and localize objects? Measured on images with true masks.

For each object class with at least one labeled detector unit:

- detection: average precision over the held-out images, the score of an image being the max
  activation of the class's best unit (highest label score: IoU for automatic labels, precision
  for crowd labels); positives are the images where the class is visible;
- localization: mean IoU, over the positive images, between the true mask and the concept mask
  explain() shows (the union of the quantile masks of every unit with that concept that fires;
  an image where none fires scores 0).

Baseline (same run, same images): a random unit of the best unit's layer, scored the same way
(its own threshold), averaged over several draws; it uses no unit labels. Scene accuracy (top-1,
top-5) of the classifier is reported too. Plain torch/numpy: no Django.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from annotate.explain.labeled import LabeledUnit
from dissect.images import preprocess_transform
from dissect.networks.forward import forward_with_layers

__all__ = [
    "ConceptScore",
    "EvaluationResult",
    "average_precision",
    "mask_iou",
    "evaluate_localization",
]


def average_precision(scores: Sequence[float], positives: Sequence[bool]) -> float:
    """Non-interpolated AP: the mean, over positives, of the precision at each positive's rank
    (scores sorted high to low; ties keep input order). NaN without positives."""
    scores = np.asarray(scores, dtype=np.float64)
    positives = np.asarray(positives, dtype=bool)
    n_pos = int(positives.sum())
    if n_pos == 0:
        return float("nan")
    order = np.argsort(-scores, kind="stable")
    hits = positives[order]
    precision_at = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    return float(precision_at[hits].sum() / n_pos)


def mask_iou(pred: np.ndarray, truth: np.ndarray) -> float:
    """|pred & truth| / |pred | truth| (1.0 when both are empty)."""
    union = np.logical_or(pred, truth).sum()
    return float(np.logical_and(pred, truth).sum() / union) if union else 1.0


@dataclass
class ConceptScore:
    concept: str
    layer: str
    unit: int
    units: int  # labeled units with this concept
    positives: int
    ap: float
    miou: float
    baseline_ap: float
    baseline_miou: float


@dataclass
class EvaluationResult:
    images: int
    scene_top1: float
    scene_top5: float
    concepts: list[ConceptScore] = field(default_factory=list)

    def mean(self, attr: str) -> float:
        values = [getattr(c, attr) for c in self.concepts if not np.isnan(getattr(c, attr))]
        return float(np.mean(values)) if values else float("nan")


def _upsample(acts: torch.Tensor, size: int) -> torch.Tensor:
    return F.interpolate(acts, size=(size, size), mode="bilinear", align_corners=False)


def evaluate_localization(
    *,
    net,
    units: Sequence[LabeledUnit],
    images: np.ndarray,
    object_maps: np.ndarray,
    scene_index: np.ndarray | None,
    concept_labels: dict[str, int],
    layer_thresholds: dict[str, torch.Tensor],
    n_random: int = 5,
    seed: int = 0,
    batch_size: int = 50,
    device: str = "auto",
    progress: Callable[[int, int], None] | None = None,
) -> EvaluationResult:
    """Evaluate ``units`` (their concepts named by ``concept_labels`` {concept: label number in
    ``object_maps``}) on ``images`` (N, S, S, 3) uint8 in the network's view, with true label maps
    ``object_maps`` (N, S, S) and true class indexes ``scene_index`` (N,; None: the classifier's
    classes are not the images' scenes, accuracy is NaN). ``layer_thresholds``
    {layer: (units,)} holds every unit's run threshold (the random baseline needs them)."""
    n, size = images.shape[0], images.shape[1]
    by_concept: dict[str, list[LabeledUnit]] = {}
    for u in units:
        if u.concept in concept_labels and u.threshold is not None:
            by_concept.setdefault(u.concept, []).append(u)
    best = {
        c: max(us, key=lambda u: (u.score if u.score is not None else 0.0, -u.unit))
        for c, us in by_concept.items()
    }
    rng = np.random.default_rng(seed)
    random_units: dict[str, list[int]] = {}
    for c in sorted(best):
        layer, unit = best[c].layer, best[c].unit
        choices = [i for i in range(len(layer_thresholds[layer])) if i != unit]
        random_units[c] = rng.choice(
            choices, size=min(n_random, len(choices)), replace=False
        ).tolist()
    layers = sorted({u.layer for us in by_concept.values() for u in us})
    transform = preprocess_transform(net.preprocessing)
    # Per concept: best-unit peak per image; per-image IoU of the concept mask; same for baselines.
    peaks = {c: np.zeros(n) for c in best}
    ious = {c: np.zeros(n) for c in best}
    base_peaks = {c: np.zeros((len(random_units[c]), n)) for c in best}
    base_ious = {c: np.zeros((len(random_units[c]), n)) for c in best}
    top1 = top5 = 0
    for start in range(0, n, batch_size):
        stop = min(n, start + batch_size)
        x = torch.stack([transform(Image.fromarray(im)) for im in images[start:stop]])
        probs, acts = forward_with_layers(net, layers, x, device=device)
        top = probs.topk(min(5, probs.shape[1]), dim=1).indices.numpy()
        if scene_index is not None:
            truth = scene_index[start:stop]
            top1 += int((top[:, 0] == truth).sum())
            top5 += int((top == truth[:, None]).any(1).sum())
        for c, us in by_concept.items():
            truth_masks = object_maps[start:stop] == concept_labels[c]
            b = best[c]
            peaks[c][start:stop] = acts[b.layer][:, b.unit].amax(dim=(1, 2)).numpy()
            merged = np.zeros_like(truth_masks)
            for u in us:
                amap = acts[u.layer][:, u.unit : u.unit + 1]
                fires = (amap.amax(dim=(1, 2, 3)) > u.threshold).numpy()
                mask = (_upsample(amap, size)[:, 0] > u.threshold).numpy()
                merged |= mask & fires[:, None, None]
            ious[c][start:stop] = [mask_iou(p, t) for p, t in zip(merged, truth_masks, strict=True)]
            thresholds = layer_thresholds[b.layer]
            for r, ru in enumerate(random_units[c]):
                amap = acts[b.layer][:, ru : ru + 1]
                thr = float(thresholds[ru])
                base_peaks[c][r, start:stop] = amap.amax(dim=(1, 2, 3)).numpy()
                mask = (_upsample(amap, size)[:, 0] > thr).numpy()
                base_ious[c][r, start:stop] = [
                    mask_iou(p, t) for p, t in zip(mask, truth_masks, strict=True)
                ]
        if progress:
            progress(stop, n)
    scored = n if scene_index is not None else 0
    result = EvaluationResult(
        n, top1 / scored if scored else float("nan"), top5 / scored if scored else float("nan")
    )
    for c in sorted(best):
        present = (object_maps == concept_labels[c]).any(axis=(1, 2))
        if not present.any():
            continue
        rows = range(len(random_units[c]))
        result.concepts.append(
            ConceptScore(
                concept=c,
                layer=best[c].layer,
                unit=best[c].unit,
                units=len(by_concept[c]),
                positives=int(present.sum()),
                ap=average_precision(peaks[c], present),
                miou=float(ious[c][present].mean()),
                baseline_ap=float(
                    np.mean([average_precision(base_peaks[c][r], present) for r in rows])
                ),
                baseline_miou=float(np.mean([base_ious[c][r][present].mean() for r in rows])),
            )
        )
    return result


def markdown_table(results: dict[str, EvaluationResult]) -> str:
    """Markdown: per network, per object class AP and mIoU next to the random-unit baseline."""
    lines = []
    for name, res in results.items():
        scenes = (
            f"scene top-1 {res.scene_top1:.1%}, top-5 {res.scene_top5:.1%}"
            if not np.isnan(res.scene_top1)
            else "its classes are not scenes"
        )
        lines.append(
            f"\n**{name}** — {res.images} held-out images; {scenes}; "
            f"{len(res.concepts)} object classes with a detector.\n"
        )
        lines.append(
            "| object | best unit | units | images with it | AP | AP random unit | mIoU | mIoU random unit |"
        )
        lines.append("|---|---|---|---|---|---|---|---|")
        for c in res.concepts:
            lines.append(
                f"| {c.concept} | {c.layer}#{c.unit} | {c.units} | {c.positives} | {c.ap:.3f} | "
                f"{c.baseline_ap:.3f} | {c.miou:.3f} | {c.baseline_miou:.3f} |"
            )
        lines.append(
            f"| **mean** | | | | **{res.mean('ap'):.3f}** | {res.mean('baseline_ap'):.3f} | "
            f"**{res.mean('miou'):.3f}** | {res.mean('baseline_miou'):.3f} |"
        )
    return "\n".join(lines) + "\n"
