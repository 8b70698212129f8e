"""Overlay images of an explanation: colored concept masks over the network's view, a legend by
concept, and one transparent layer per concept (the page stacks them and toggles each)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from annotate.explain.core import ConceptResult, Explanation

__all__ = ["PALETTE", "concept_color", "concept_layer", "render_overlay", "base_image"]

# Distinct, color-blind-friendly hues (Okabe-Ito plus a few more), cycled by concept rank.
PALETTE: tuple[tuple[int, int, int], ...] = (
    (230, 159, 0),
    (86, 180, 233),
    (0, 158, 115),
    (240, 228, 66),
    (0, 114, 178),
    (213, 94, 0),
    (204, 121, 167),
    (255, 255, 255),
    (148, 103, 189),
    (140, 86, 75),
    (23, 190, 207),
    (188, 189, 34),
)
ALPHA = 0.45


def concept_color(rank: int) -> tuple[int, int, int]:
    return PALETTE[rank % len(PALETTE)]


def _resized_mask(mask: np.ndarray, size_px: int) -> np.ndarray:
    img = Image.fromarray(np.asarray(mask, dtype=np.uint8) * 255)
    return np.asarray(img.resize((size_px, size_px), Image.NEAREST)) > 127


def _outline(mask: np.ndarray) -> np.ndarray:
    """Pixels of ``mask`` with a 4-neighbour outside it: a one-pixel contour."""
    padded = np.pad(mask, 1, constant_values=False)
    inner = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    return mask & ~inner


def base_image(explanation: Explanation, *, size_px: int = 512) -> Image.Image:
    """The network's view of the image, enlarged to ``size_px`` (what the masks are drawn on)."""
    return explanation.view.resize((size_px, size_px), Image.BICUBIC)


def concept_layer(concept: ConceptResult, rank: int, *, size_px: int = 512) -> Image.Image:
    """A transparent RGBA image: the concept's mask filled in its color, with a solid contour."""
    mask = _resized_mask(concept.mask, size_px)
    rgba = np.zeros((size_px, size_px, 4), np.uint8)
    rgba[..., :3] = concept_color(rank)
    rgba[..., 3] = np.where(mask, int(255 * ALPHA), 0)
    rgba[_outline(mask), 3] = 255
    return Image.fromarray(rgba, "RGBA")


def render_overlay(
    explanation: Explanation,
    *,
    size_px: int = 512,
    concepts: Sequence[ConceptResult] | None = None,
    legend: bool = True,
) -> Image.Image:
    """The overlay PNG: masks of ``concepts`` (default: all) over the view, plus a legend panel
    (color, concept, category, confidence) and the top scene classes."""
    shown = list(explanation.concepts if concepts is None else concepts)
    canvas = base_image(explanation, size_px=size_px).convert("RGBA")
    # Paint the least confident first so the best concept's contour stays on top.
    ranks = {id(c): i for i, c in enumerate(explanation.concepts)}
    for concept in reversed(shown):
        layer = concept_layer(concept, ranks.get(id(concept), 0), size_px=size_px)
        canvas = Image.alpha_composite(canvas, layer)
    canvas = canvas.convert("RGB")
    if not legend:
        return canvas
    font = ImageFont.load_default()
    line = 16
    lines = len(explanation.scenes[:5]) + len(shown) + 3
    panel_w = 260
    out = Image.new("RGB", (size_px + panel_w, max(size_px, lines * line + 16)), (250, 250, 250))
    out.paste(canvas, (0, 0))
    draw = ImageDraw.Draw(out)
    x, y = size_px + 12, 8
    draw.text((x, y), "Scene", fill=(0, 0, 0), font=font)
    y += line
    for scene in explanation.scenes[:5]:
        draw.text((x, y), f"{scene.probability:6.1%}  {scene.label}", fill=(40, 40, 40), font=font)
        y += line
    y += line // 2
    draw.text((x, y), "Concepts (confidence)", fill=(0, 0, 0), font=font)
    y += line
    if not shown:
        draw.text((x, y), "no labeled unit fired", fill=(90, 90, 90), font=font)
    for concept in shown:
        color = concept_color(ranks.get(id(concept), 0))
        draw.rectangle((x, y + 2, x + 11, y + 13), fill=color, outline=(0, 0, 0))
        text = f"{concept.concept} [{concept.category}] {concept.confidence:.2f}"
        draw.text((x + 18, y), text[:34], fill=(20, 20, 20), font=font)
        y += line
    return out
