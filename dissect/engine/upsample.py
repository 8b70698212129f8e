"""Bilinear upsampling of unit maps (``align_corners=False``, as NetDissect), densely or only where
a threshold can be passed.

Network Dissection compares each unit's map, upsampled bilinearly to the label maps' size, with a
threshold near the top 0.5 % of its values: almost every upsampled pixel lies below it. A
bilinear output pixel is a convex combination of (at most) the 2 x 2 source cells around it, so
an output *block* (the pixels that share the same source cells) can pass the threshold only
where the largest of its source cells does. ``hot_pixels`` evaluates only those blocks.

Both ``upsample`` (dense) and ``hot_pixels`` (blocks) compute every output value with the same
float32 operations in the same order (first along the width, then along the height), so a pixel
has bit-identical values in both: counting the pixels above a threshold with either gives the same
integers. The values equal ``torch.nn.functional.interpolate(..., mode="bilinear",
align_corners=False)`` up to float32 rounding (a few ulps; tested to 1e-6 relative).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import NamedTuple

import torch

__all__ = ["BilinearPlan", "HotPixels", "bilinear_plan", "hot_blocks", "hot_pixels", "upsample"]

# Blocks of at least this many output pixels (e.g. 4 x 4 maps upsampled 32x) are pruned column
# by column as well; smaller ones (16 x 16 at 8 x 8 -> 128 px) are faster evaluated whole.
LARGE_BLOCK = 512


@dataclass(frozen=True)
class AxisPlan:
    """One axis of an ``in_size -> out_size`` bilinear resize (``align_corners=False``).

    Per output index: the two source indices and their weights. Output indices are grouped in
    *blocks* that share their source cells (the same first source index, and whether the source
    coordinate was clamped at the border), so a block depends on two source cells only:
    ``block_src0`` / ``block_src1`` [B]; ``block_out`` [B, Lmax] lists a block's output indices
    and ``block_w0`` / ``block_w1`` [B, Lmax] their weights, NaN in the padding (a padded slot
    computes NaN, which passes no threshold)."""

    src0: torch.Tensor  # [out] int64
    src1: torch.Tensor  # [out] int64
    w0: torch.Tensor  # [out] float32
    w1: torch.Tensor  # [out] float32
    block_src0: torch.Tensor  # [B] int64
    block_src1: torch.Tensor  # [B] int64
    block_out: torch.Tensor  # [B, Lmax] int64 (padding: 0)
    block_w0: torch.Tensor  # [B, Lmax] float32 (padding: NaN)
    block_w1: torch.Tensor


def _axis_plan(in_size: int, out_size: int) -> AxisPlan:
    # PyTorch's source index for align_corners=False, in float32: scale * (i + 0.5) - 0.5,
    # clamped at 0; the weights are the fractional parts.
    scale = torch.tensor(in_size / out_size, dtype=torch.float32)
    i = torch.arange(out_size, dtype=torch.float32)
    raw = scale * (i + 0.5) - 0.5
    src = raw.clamp(min=0)
    src0 = src.floor().long().clamp(max=in_size - 1)
    src1 = torch.where(src0 < in_size - 1, src0 + 1, src0)
    w1 = src - src0.float()
    w0 = 1.0 - w1
    group = src0 * 2 + (raw >= 0).long()  # clamped outputs form their own block
    _, counts = torch.unique_consecutive(group, return_counts=True)
    starts = torch.cumsum(counts, 0) - counts
    offsets = torch.arange(int(counts.max())).view(1, -1)
    valid = offsets < counts.view(-1, 1)
    block_out = torch.where(valid, starts.view(-1, 1) + offsets, torch.zeros_like(offsets))
    nan = torch.tensor(float("nan"))
    return AxisPlan(
        src0=src0,
        src1=src1,
        w0=w0,
        w1=w1,
        block_src0=src0[starts],
        block_src1=src1[starts],
        block_out=block_out,
        block_w0=torch.where(valid, w0[block_out], nan),
        block_w1=torch.where(valid, w1[block_out], nan),
    )


@dataclass(frozen=True)
class BilinearPlan:
    """An ``(h, w) -> (H, W)`` bilinear resize on one device: the two axes' plans, the flat
    output pixel (row * W + col) of each (row block, col block)'s first slot, and each slot's
    offset from it (a block's outputs are consecutive rows and columns)."""

    rows: AxisPlan
    cols: AxisPlan
    out_size: tuple[int, int]
    block_origin: torch.Tensor  # [Br * Bc] int64
    slot_offset: torch.Tensor  # [Lr * Lc] int64 (padding slots: never selected, NaN weights)

    def to(self, device) -> BilinearPlan:
        def moved(plan: AxisPlan) -> AxisPlan:
            return AxisPlan(**{k: v.to(device) for k, v in vars(plan).items()})

        return BilinearPlan(
            moved(self.rows),
            moved(self.cols),
            self.out_size,
            self.block_origin.to(device),
            self.slot_offset.to(device),
        )


@lru_cache(maxsize=64)
def _cached_plan(in_size: tuple[int, int], out_size: tuple[int, int], device: str) -> BilinearPlan:
    rows, cols = _axis_plan(in_size[0], out_size[0]), _axis_plan(in_size[1], out_size[1])
    width = out_size[1]
    origin = rows.block_out[:, :1] * width + cols.block_out[:, 0].view(1, -1)  # [Br, Bc]
    lr, lc = rows.block_out.shape[1], cols.block_out.shape[1]
    offset = torch.arange(lr).view(-1, 1) * width + torch.arange(lc).view(1, -1)  # [Lr, Lc]
    return BilinearPlan(rows, cols, out_size, origin.reshape(-1), offset.reshape(-1)).to(device)


def bilinear_plan(in_size, out_size, device="cpu") -> BilinearPlan:
    """The (cached) plan of an ``in_size -> out_size`` resize (both (height, width))."""
    return _cached_plan(
        (int(in_size[0]), int(in_size[1])),
        (int(out_size[0]), int(out_size[1])),
        str(torch.device(device)),
    )


def upsample(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """[..., h, w] float -> [..., H, W] float32, bilinear, ``align_corners=False``."""
    maps = maps.to(torch.float32)
    plan = bilinear_plan(maps.shape[-2:], size, maps.device)
    rows, cols = plan.rows, plan.cols
    # Along the width first, then along the height: w0 * first + w1 * second each time.
    along = cols.w0 * maps[..., cols.src0] + cols.w1 * maps[..., cols.src1]  # [..., h, W]
    return (
        rows.w0.view(-1, 1) * along[..., rows.src0, :]
        + rows.w1.view(-1, 1) * along[..., rows.src1, :]
    )


class HotPixels(NamedTuple):
    """The upsampled pixels above a cut, grouped by output block (see ``hot_blocks``)."""

    block_map: torch.Tensor  # [K] int64: the map each hot block belongs to
    block_origin: torch.Tensor  # [K] int64: the flat output pixel of the block's first slot
    block: torch.Tensor  # [Q] int64: each hot pixel's block (an index into the K blocks)
    offset: torch.Tensor  # [Q] int64: its flat pixel minus its block's origin
    value: torch.Tensor  # [Q] float32


def hot_pixels(
    maps: torch.Tensor, edge: torch.Tensor, size: tuple[int, int]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The upsampled pixels above ``edge``, without upsampling the rest.

    ``maps`` [P, h, w] float32, ``edge`` [P] float32 (one cut per map). Returns ``(map, pixel,
    value)``: per pixel with ``upsample(maps, size)[p].view(-1)[pixel] > edge[p]``, its map
    index p, flat pixel index (row * W + col) and value, bit-identical to ``upsample``'s. Cost:
    proportional to the blocks whose source cells reach above ``edge``, not to H * W."""
    hot = hot_blocks(maps, edge, size)
    return (
        hot.block_map.index_select(0, hot.block),
        hot.block_origin.index_select(0, hot.block) + hot.offset,
        hot.value,
    )


def hot_blocks(maps: torch.Tensor, edge: torch.Tensor, size: tuple[int, int]) -> HotPixels:
    """``hot_pixels`` grouped by block: what a caller needs per map can be looked up once per
    block (``block_map``, ``block_origin``) and gathered per pixel with one ``index_select`` on
    ``block``, instead of once per pixel."""
    maps = maps.to(torch.float32)
    n, h, w = maps.shape
    plan = bilinear_plan((h, w), size, maps.device)
    rows, cols = plan.rows, plan.cols
    # The largest source cell of every (row block, col block): a block below it stays below.
    tall = torch.maximum(maps[:, rows.block_src0], maps[:, rows.block_src1])  # [P, Br, w]
    peak = torch.maximum(tall[..., cols.block_src0], tall[..., cols.block_src1])  # [P, Br, Bc]
    # Rounding can lift a convex combination a few ulps above its largest term: a margin keeps
    # the pruning conservative (the exact comparison happens on the computed values below).
    margin = edge.abs() * 1e-5 + 1e-30
    p, br, bc = (peak > (edge - margin).view(-1, 1, 1)).nonzero(as_tuple=True)
    if p.numel() == 0:
        empty = torch.zeros(0, dtype=torch.int64, device=maps.device)
        value = torch.zeros(0, dtype=torch.float32, device=maps.device)
        return HotPixels(empty, empty, empty, empty, value)
    # A hot block's four source cells resized along the width (the same products and sums as
    # ``upsample``): its top and bottom source rows at each of its output columns.
    r0, r1 = rows.block_src0[br], rows.block_src1[br]
    c0, c1 = cols.block_src0[bc], cols.block_src1[bc]
    cw0, cw1 = cols.block_w0[bc], cols.block_w1[bc]  # [K, Lc], NaN in the padding
    top = cw0 * maps[p, r0, c0].view(-1, 1) + cw1 * maps[p, r0, c1].view(-1, 1)
    bottom = cw0 * maps[p, r1, c0].view(-1, 1) + cw1 * maps[p, r1, c1].view(-1, 1)
    if rows.block_out.shape[1] * cols.block_out.shape[1] >= LARGE_BLOCK:
        return _hot_columns(plan, p, br, bc, top, bottom, edge, margin)
    origin = plan.block_origin[br * cols.block_src0.numel() + bc]  # [K]
    rw0, rw1 = rows.block_w0[br].unsqueeze(2), rows.block_w1[br].unsqueeze(2)  # [K, Lr, 1]
    value = (rw0 * top.unsqueeze(1) + rw1 * bottom.unsqueeze(1)).view(p.numel(), -1)
    # Flat gathers with index_select: several times faster than 2-D advanced indexing.
    block, slot = (value > edge[p].view(-1, 1)).nonzero(as_tuple=True)
    flat = block * value.shape[1] + slot
    return HotPixels(p, origin, block, plan.slot_offset.index_select(0, slot), value.view(-1)[flat])


def _hot_columns(plan, p, br, bc, top, bottom, edge, margin) -> HotPixels:
    """``hot_blocks`` for large blocks (coarse maps upsampled many times): an output column of a
    block lies between its top and bottom values, so only the columns that reach above the cut
    are evaluated (the same products and sums; NaN padding never passes). The hot *columns* are
    the returned blocks: a column's pixels are consecutive rows, ``offset`` = row * W."""
    rows, cols, size = plan.rows, plan.cols, plan.out_size
    k, j = (torch.maximum(top, bottom) > (edge - margin)[p].view(-1, 1)).nonzero(as_tuple=True)
    rw0, rw1 = rows.block_w0[br[k]], rows.block_w1[br[k]]  # [Kc, Lr], NaN in the padding
    value = rw0 * top[k, j].view(-1, 1) + rw1 * bottom[k, j].view(-1, 1)  # [Kc, Lr]
    column, row = (value > edge[p[k]].view(-1, 1)).nonzero(as_tuple=True)
    origin = rows.block_out[br[k], 0] * size[1] + cols.block_out[bc[k], j]  # [Kc]
    flat = column * value.shape[1] + row
    return HotPixels(p[k], origin, column, row * size[1], value.view(-1)[flat])
