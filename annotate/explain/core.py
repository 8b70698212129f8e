"""explain(): one forward pass -> top scene classes plus the concepts the labeled units localize.

The paper's Fig. 13: the classifier's top-5 classes with probabilities, and for every labeled
detector unit whose maximum activation on the image passes the unit's threshold (its top-0.5 %
activation quantile over the run's images), the unit's mask (bilinear upsampling, thresholded at
that level), its concept and category, and a confidence: the unit's peak activation here relative
to its top-1 activation over the run's images. Units naming the same concept are merged into one
mask; each concept lists its best unit first.

Plain torch/numpy: no Django. ``annotate.explain.selectors.labeled_units`` turns rows into the
``LabeledUnit`` list; views, the API and the command all call ``explain``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image

from annotate.explain.labeled import LabeledUnit
from dissect.engine.segment import mask_quantile
from dissect.images import network_view, preprocess_transform
from dissect.networks import LoadedNetwork
from dissect.networks.forward import forward_with_layers

__all__ = [
    "LabeledUnit",
    "UnitHit",
    "ConceptResult",
    "ScenePrediction",
    "Explanation",
    "explain",
    "forward_with_layers",
    "mask_rle",
]


@dataclass(frozen=True)
class UnitHit:
    """A labeled unit that fired on the image."""

    layer: str
    unit: int
    source: str
    activation: float
    threshold: float
    top_score: float
    confidence: float
    score: float | None
    unit_id: int | None

    def as_dict(self) -> dict:
        return {
            "layer": self.layer,
            "unit": self.unit,
            "unit_id": self.unit_id,
            "source": self.source,
            "activation": round(self.activation, 5),
            "threshold": round(self.threshold, 5),
            "top_score": round(self.top_score, 5),
            "confidence": round(self.confidence, 4),
            "label_score": None if self.score is None else round(self.score, 4),
        }


@dataclass
class ConceptResult:
    """One concept on the image: the union of its units' masks; ``units[0]`` is the best unit."""

    concept: str
    category: str
    units: list[UnitHit]
    mask: np.ndarray  # bool (H, W) in the network view's coordinates

    @property
    def confidence(self) -> float:
        return self.units[0].confidence

    @property
    def area(self) -> float:
        """Fraction of the view covered by the mask."""
        return float(self.mask.mean()) if self.mask.size else 0.0

    def as_dict(self, *, include_mask: bool = True) -> dict:
        out = {
            "concept": self.concept,
            "category": self.category,
            "confidence": round(self.confidence, 4),
            "area": round(self.area, 4),
            "best_unit": self.units[0].as_dict(),
            "units": [u.as_dict() for u in self.units],
            "sources": sorted({u.source for u in self.units}),
        }
        if include_mask:
            out["mask_rle"] = mask_rle(self.mask)
        return out


@dataclass(frozen=True)
class ScenePrediction:
    index: int
    label: str
    probability: float


@dataclass
class Explanation:
    """What ``explain`` returns: scenes best first, concepts by confidence, the network view."""

    scenes: list[ScenePrediction]
    concepts: list[ConceptResult]
    view: Image.Image  # the RGB pixels the network saw (input_size square)
    mask_px: int
    labeled_units: int
    layers: list[str] = field(default_factory=list)

    def as_dict(self, *, include_masks: bool = True) -> dict:
        return {
            "scenes": [
                {"index": s.index, "label": s.label, "probability": round(s.probability, 5)}
                for s in self.scenes
            ],
            "concepts": [c.as_dict(include_mask=include_masks) for c in self.concepts],
            "mask_size": [self.mask_px, self.mask_px],
            "view_size": list(self.view.size),
            "labeled_units": self.labeled_units,
            "layers": self.layers,
        }


def mask_rle(mask: np.ndarray) -> dict:
    """Uncompressed run-length encoding of a bool mask in row-major order, starting with a run
    of False (COCO's convention, but row-major): {"size": [H, W], "counts": [...]}."""
    flat = np.asarray(mask, dtype=bool).ravel()
    change = np.flatnonzero(np.diff(flat.astype(np.int8))) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    counts = np.diff(bounds).tolist()
    if flat.size and flat[0]:
        counts = [0, *counts]
    return {"size": list(mask.shape), "counts": counts}


def explain(
    *,
    net: LoadedNetwork,
    units: Sequence[LabeledUnit],
    image: Image.Image,
    top_k: int = 5,
    mask_px: int | None = None,
    device: str = "auto",
) -> Explanation:
    """Explain ``image`` (RGB PIL) with ``net`` and its labeled ``units`` in one forward pass.

    Masks are ``mask_px`` square (default: the network's input size) over the network's view of
    the image (``dissect.images.network_view``: resize + center crop)."""
    size = int(mask_px or net.input_size)
    view = network_view(image.convert("RGB"), net.preprocessing)
    x = preprocess_transform(net.preprocessing)(image.convert("RGB")).unsqueeze(0)
    layers = list(dict.fromkeys(u.layer for u in units))
    probs, acts = forward_with_layers(net, layers, x, device=device)
    scenes = top_scenes(probs[0], net.class_names, k=top_k)
    concepts = localize(units=units, activations={k: v[0] for k, v in acts.items()}, mask_px=size)
    return Explanation(scenes, concepts, view, size, len(units), layers)


def top_scenes(
    probs: torch.Tensor, class_names: Sequence[str], *, k: int = 5
) -> list[ScenePrediction]:
    """The ``k`` most probable classes of one image's probability vector, best first."""
    k = min(k, probs.numel())
    values, indexes = probs.topk(k)
    return [
        ScenePrediction(
            int(i), class_names[int(i)] if int(i) < len(class_names) else str(int(i)), float(p)
        )
        for p, i in zip(values.tolist(), indexes.tolist(), strict=True)
    ]


def localize(
    *, units: Sequence[LabeledUnit], activations: dict[str, torch.Tensor], mask_px: int
) -> list[ConceptResult]:
    """Concepts of one image from its activations {layer: [U, h, w]}: every unit whose peak passes
    its threshold contributes its quantile mask; same-concept masks are merged. Best first."""
    hits: dict[tuple[str, str], list[tuple[UnitHit, np.ndarray]]] = {}
    for labeled in units:
        if labeled.threshold is None:
            continue
        amap = activations[labeled.layer][labeled.unit]
        peak = float(amap.max())
        if not peak > labeled.threshold:
            continue
        mask = mask_quantile(amap, (mask_px, mask_px), level=labeled.threshold)
        if not mask.any():
            continue  # the peak passes but no upsampled pixel does: nothing to show
        top = float(labeled.top_score or 0.0)
        hit = UnitHit(
            layer=labeled.layer,
            unit=labeled.unit,
            source=labeled.source,
            activation=peak,
            threshold=float(labeled.threshold),
            top_score=top,
            confidence=peak / top if top > 0 else 0.0,
            score=labeled.score,
            unit_id=labeled.unit_id,
        )
        key = (labeled.concept.strip().lower(), labeled.category)
        hits.setdefault(key, []).append((hit, mask))
    concepts = []
    for (concept, category), found in hits.items():
        found.sort(key=lambda pair: (-pair[0].confidence, pair[0].layer, pair[0].unit))
        merged = np.logical_or.reduce([mask for _, mask in found])
        concepts.append(ConceptResult(concept, category, [h for h, _ in found], merged))
    concepts.sort(key=lambda c: (-c.confidence, c.concept))
    return concepts
