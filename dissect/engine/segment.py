"""Masks from a unit's activation map, and the tiles/montages annotators see.

Three recipes (``make_mask(recipe, ...)``), each (activation map [h, w], image size (W, H),
params) -> bool mask numpy [H, W]:

- ``rf-disk`` (the paper's): union of disks whose diameter is the layer's receptive field,
  centered on the map cells whose activation is > ``threshold`` (0.5) x the map's max.
- ``activation``: map / max, bilinear upsampling to the image, keep > ``threshold`` (0.2).
- ``quantile`` (NetDissect): bilinear upsampling of the raw map, keep > the unit's activation
  quantile ``level`` (e.g. ``UnitStats.threshold(0.995)[unit]``).

Map cell (i, j) covers image pixels [i*H/h, (i+1)*H/h) x [j*W/w, (j+1)*W/w): the image must be
the network's view of the picture (``dissect.images.network_view``) or a resize of it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

__all__ = [
    "MASK_RECIPES",
    "make_mask",
    "make_masks",
    "mask_rf_disk",
    "mask_activation",
    "mask_quantile",
    "apply_mask",
    "make_tile",
    "masked_tile",
    "tile_layers",
    "make_montage",
]

MASK_RECIPES = ("rf-disk", "activation", "quantile")


def _as_map(activation_map) -> torch.Tensor:
    amap = torch.as_tensor(activation_map, dtype=torch.float32)
    while amap.dim() > 2:
        amap = amap[0]
    if amap.dim() != 2:
        raise ValueError(f"activation map must be 2-D [h, w], got shape {tuple(amap.shape)}")
    return torch.nan_to_num(amap, nan=float("-inf"))


def _upsample(amap: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
    width, height = image_size
    return F.interpolate(
        amap[None, None], size=(height, width), mode="bilinear", align_corners=False
    )[0, 0]


def mask_rf_disk(
    activation_map,
    image_size: tuple[int, int],
    *,
    rf_diameter_px: float,
    input_size: int | None = None,
    threshold: float = 0.5,
) -> np.ndarray:
    """Union of disks of ``rf_diameter_px`` centered on cells > ``threshold`` x max.

    ``rf_diameter_px`` is in network-input pixels when ``input_size`` is given (scaled to the
    image), else in image pixels. An all-non-positive map gives an empty mask.
    """
    amap = _as_map(activation_map)
    width, height = image_size
    peak = float(amap.max())
    if not peak > 0:
        return np.zeros((height, width), dtype=bool)
    h, w = amap.shape
    cells = torch.nonzero(amap > threshold * peak)
    scale = width / input_size if input_size else 1.0
    radius = rf_diameter_px * scale / 2
    cy = (cells[:, 0].float() + 0.5) * (height / h)
    cx = (cells[:, 1].float() + 0.5) * (width / w)
    ys = torch.arange(height, dtype=torch.float32) + 0.5
    xs = torch.arange(width, dtype=torch.float32) + 0.5
    mask = torch.zeros(height, width, dtype=torch.bool)
    # Few cells pass (usually < 50): one vectorized distance image per chunk of cells.
    for chunk in torch.split(torch.arange(cells.shape[0]), 64):
        dy = (ys[None, :, None] - cy[chunk][:, None, None]) ** 2
        dx = (xs[None, None, :] - cx[chunk][:, None, None]) ** 2
        mask |= ((dy + dx) <= radius**2).any(0)
    return mask.numpy()


def mask_activation(
    activation_map, image_size: tuple[int, int], *, threshold: float = 0.2
) -> np.ndarray:
    """Normalize by the map's max, upsample bilinearly, keep > ``threshold``."""
    amap = _as_map(activation_map)
    width, height = image_size
    peak = float(amap.max())
    if not peak > 0:
        return np.zeros((height, width), dtype=bool)
    return (_upsample(amap / peak, image_size) > threshold).numpy()


def mask_quantile(activation_map, image_size: tuple[int, int], *, level: float) -> np.ndarray:
    """Upsample the raw map bilinearly, keep > ``level`` (the unit's quantile threshold)."""
    return (_upsample(_as_map(activation_map), image_size) > float(level)).numpy()


def make_mask(recipe: str, activation_map, image_size: tuple[int, int], **params) -> np.ndarray:
    """Dispatch to a recipe by name ('rf-disk', 'activation', 'quantile')."""
    if recipe == "rf-disk":
        return mask_rf_disk(activation_map, image_size, **params)
    if recipe == "activation":
        return mask_activation(activation_map, image_size, **params)
    if recipe == "quantile":
        return mask_quantile(activation_map, image_size, **params)
    raise ValueError(f"unknown mask recipe {recipe!r}: use one of {', '.join(MASK_RECIPES)}")


def make_masks(
    recipe: str, activation_maps: Sequence, image_size: tuple[int, int], params: Sequence[dict]
) -> list[np.ndarray]:
    """``make_mask`` for many maps on images of one size (``params[i]`` for map i): the
    quantile recipe upsamples all maps of one shape in one call (one small interpolate per tile
    cost more than the rest of a tile); the values and masks are those of ``make_mask``."""
    if recipe != "quantile":
        return [
            make_mask(recipe, m, image_size, **p)
            for m, p in zip(activation_maps, params, strict=True)
        ]
    maps = [_as_map(m) for m in activation_maps]
    masks: list[np.ndarray | None] = [None] * len(maps)
    by_shape: dict[tuple[int, int], list[int]] = {}
    for i, amap in enumerate(maps):
        by_shape.setdefault(tuple(amap.shape), []).append(i)
    width, height = image_size
    for indexes in by_shape.values():
        stacked = torch.stack([maps[i] for i in indexes])[:, None]
        up = F.interpolate(stacked, size=(height, width), mode="bilinear", align_corners=False)
        # float32 levels: the same rounding as comparing a float32 map with a Python float.
        levels = torch.tensor([float(params[i]["level"]) for i in indexes], dtype=torch.float32)
        for i, mask in zip(indexes, (up[:, 0] > levels.view(-1, 1, 1)).numpy(), strict=True):
            masks[i] = mask
    return masks


def tile_layers(image: Image.Image, *, dim: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    """The image as uint8 RGB [H, W, 3] and its ``dim``-brightness copy: computed once per image,
    they make every tile of that image with one select (``masked_tile``)."""
    rgb = np.asarray(image.convert("RGB"))
    dimmed = np.clip(rgb.astype(np.float32) * np.float32(dim) + 0.5, 0, 255).astype(np.uint8)
    return rgb, dimmed


def masked_tile(
    layers: tuple[np.ndarray, np.ndarray], mask: np.ndarray | None, *, tile_px: int = 120
) -> Image.Image:
    """A square ``tile_px`` tile: the image inside ``mask``, its dimmed copy outside."""
    image = Image.fromarray(layers[0], "RGB") if mask is None else _select(layers, mask)
    return image.resize((tile_px, tile_px), Image.BILINEAR)


def apply_mask(image: Image.Image, mask: np.ndarray, *, dim: float = 0.2) -> Image.Image:
    """Keep pixels inside ``mask``; scale the rest to ``dim`` (20 %) brightness. RGB out."""
    return _select(tile_layers(image, dim=dim), mask)


def _select(layers: tuple[np.ndarray, np.ndarray], mask: np.ndarray) -> Image.Image:
    """The image's pixels inside ``mask``, its dimmed copy's outside."""
    rgb, dimmed = layers
    if mask.shape != rgb.shape[:2]:
        raise ValueError(f"mask {mask.shape} does not match image {rgb.shape[:2]}")
    return Image.fromarray(np.where(mask[..., None], rgb, dimmed), "RGB")


def make_tile(
    image: Image.Image, mask: np.ndarray | None = None, *, tile_px: int = 120, dim: float = 0.2
) -> Image.Image:
    """A square ``tile_px`` tile of ``image`` (the network view), background dimmed by ``mask``."""
    return masked_tile(tile_layers(image, dim=dim), mask, tile_px=tile_px)


def make_montage(
    tiles: Sequence[Image.Image],
    *,
    columns: int | None = None,
    gap_px: int = 2,
    background: tuple[int, int, int] = (255, 255, 255),
) -> Image.Image:
    """A grid of equal-size tiles (default: as square as possible), ``gap_px`` apart."""
    if not tiles:
        raise ValueError("no tiles to put in a montage")
    tw, th = tiles[0].size
    n = len(tiles)
    columns = columns or int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / columns))
    sheet = Image.new(
        "RGB", (columns * tw + (columns - 1) * gap_px, rows * th + (rows - 1) * gap_px), background
    )
    for i, tile in enumerate(tiles):
        r, c = divmod(i, columns)
        if tile.size != (tw, th):
            tile = tile.resize((tw, th), Image.BILINEAR)
        sheet.paste(tile.convert("RGB"), (c * (tw + gap_px), r * (th + gap_px)))
    return sheet
