"""Empirical receptive fields by occlusion (Zhou et al. 2015, section 3.2).

For each of a unit's top images: note the unit's max location on the clean image; make one copy
per position of an occluder grid (``patch_px`` square of uniform random noise every
``stride_px`` px, both configurable; the paper: 11 px, stride 3); the discrepancy at a position
is |a_clean - a_occluded| of the unit at its max location. Each image's discrepancy map is
normalized by its own max, shifted so the unit's max location sits at the center, and the maps
are averaged over the unit's images.

**RF size definition.** On the averaged, centered map, the region of grid cells >= ``fraction``
(default 0.5) x the map's max has area A px^2 (cells x stride_px^2); ``rf_px`` is the equivalent
diameter 2*sqrt(A/pi); ``extent_px`` is the larger side of that region's bounding box. Note the
measured region is the true RF dilated by the occluder (about +patch_px - 1).

All copies for one image go through the network in batches, the forward pass stops at the
layer, and every unit that has the image among its top images is served by the same pass.
When the layer has a finite theoretical receptive field (``receptive_field_geometry``), each
unit is occluded only at grid positions that touch its RF window (plus ``margin_px``), and on
a crop of the image that holds that window: the crop starts on the layer's stride grid, so the
unit's cell sees exactly the same pixels and border padding (checked: the clean crop must
reproduce the whole-image activation, else the whole image is used). Elsewhere the
discrepancy is zero by construction. For early layers this is a large saving (a 19 px RF at
128 px: ~30 of 484 positions, each on a 40 px crop). ``skip_outside_rf=False`` turns it off.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from dissect.networks import (
    LoadedNetwork,
    RFGeometry,
    capture_outputs,
    receptive_field_geometry,
    resolve_layers,
    run_until_captured,
)

from .extract import resolve_device

__all__ = [
    "UnitReceptiveField",
    "LayerReceptiveField",
    "estimate_receptive_fields",
    "rf_size_from_heatmap",
    "heatmap_image",
]


@dataclass
class UnitReceptiveField:
    """``heatmap`` float32 [2G-1, 2G-1] (G = occluder grid side), one cell = stride_px px,
    center cell = the unit's max location; values in [0, 1] after normalization."""

    unit: int
    heatmap: torch.Tensor
    rf_px: float
    extent_px: float
    n_images: int


@dataclass
class LayerReceptiveField:
    layer: str
    patch_px: int
    stride_px: int
    fraction: float
    units: list[UnitReceptiveField] = field(default_factory=list)

    @property
    def mean_px(self) -> float:
        sizes = [u.rf_px for u in self.units if u.n_images]
        return float(np.mean(sizes)) if sizes else float("nan")

    @property
    def std_px(self) -> float:
        sizes = [u.rf_px for u in self.units if u.n_images]
        return float(np.std(sizes)) if sizes else float("nan")

    def summary(self) -> dict:
        """JSON-friendly: per-unit sizes and the layer's mean +- std (heat maps left out)."""
        return {
            "layer": self.layer,
            "patch_px": self.patch_px,
            "stride_px": self.stride_px,
            "fraction": self.fraction,
            "mean_px": self.mean_px,
            "std_px": self.std_px,
            "units": {
                u.unit: {"rf_px": u.rf_px, "extent_px": u.extent_px, "n_images": u.n_images}
                for u in self.units
            },
        }


def rf_size_from_heatmap(
    heatmap: torch.Tensor, *, stride_px: int, fraction: float = 0.5
) -> tuple[float, float]:
    """(equivalent diameter px, bounding-box extent px) of the cells >= fraction x max."""
    peak = float(heatmap.max()) if heatmap.numel() else 0.0
    if not peak > 0:
        return 0.0, 0.0
    region = heatmap >= fraction * peak
    area_px = float(region.sum()) * stride_px**2
    rows = torch.nonzero(region.any(1)).flatten()
    cols = torch.nonzero(region.any(0)).flatten()
    extent = max(int(rows[-1] - rows[0]) + 1, int(cols[-1] - cols[0]) + 1) * stride_px
    return 2.0 * math.sqrt(area_px / math.pi), float(extent)


def heatmap_image(unit_rf: UnitReceptiveField, *, size_px: int = 120):
    """A grayscale PIL image of a unit's averaged discrepancy map (white = strong)."""
    from PIL import Image

    hm = unit_rf.heatmap
    peak = float(hm.max()) if hm.numel() else 0.0
    data = (hm / peak if peak > 0 else hm).clamp(0, 1).mul(255).round().to(torch.uint8).numpy()
    return Image.fromarray(data, "L").resize((size_px, size_px), Image.BILINEAR)


def _occluder_grid(size: int, stride: int) -> torch.Tensor:
    return torch.arange(0, size, stride)


def estimate_receptive_fields(
    net: LoadedNetwork,
    layer: str,
    unit_images: Mapping[int, Sequence[int]],
    load_image: Callable[[int], torch.Tensor],
    *,
    patch_px: int = 11,
    stride_px: int = 3,
    fraction: float = 0.5,
    batch_size: int = 128,
    seed: int = 0,
    device: str | torch.device = "auto",
    progress: Callable[[int, int], None] | None = None,
    skip_outside_rf: bool = True,
    margin_px: int = 2,
) -> LayerReceptiveField:
    """Empirical RF of the units in ``unit_images`` ({unit: [image ids]}, e.g. each unit's top
    20 ids from ``UnitStats.top``). ``load_image(image_id)`` returns the preprocessed tensor
    [3, S, S]. Noise patches are drawn in [0, 1] pixel space, normalized like the images, from
    a generator seeded with ``seed``. ``progress(images_done, images_total)`` after each image.
    ``skip_outside_rf=False`` occludes whole images on the whole grid (slow; for checking).
    """
    dev = resolve_device(device)
    (resolved,) = resolve_layers(net, [layer])
    geometry = receptive_field_geometry(net, layer)
    model = net.model.to(dev)
    mean = torch.tensor(net.preprocessing["mean"], dtype=torch.float32).view(3, 1, 1)
    std = torch.tensor(net.preprocessing["std"], dtype=torch.float32).view(3, 1, 1)
    generator = torch.Generator().manual_seed(seed)

    units_of_image: dict[int, list[int]] = {}
    for unit, ids in unit_images.items():
        for image_id in ids:
            units_of_image.setdefault(int(image_id), []).append(int(unit))
    sums: dict[int, torch.Tensor] = {}
    counts: dict[int, int] = {int(u): 0 for u in unit_images}
    grid_side = None

    try:
        with torch.inference_mode(), capture_outputs([resolved], stop_early=True) as captured:
            total = len(units_of_image)
            for done, image_id in enumerate(sorted(units_of_image), 1):
                image = load_image(image_id).float()
                size = image.shape[-1]
                grid = _occluder_grid(size, stride_px)
                grid_side = len(grid)
                units = torch.tensor(units_of_image[image_id], dtype=torch.int64)
                disc, centers = _discrepancy_maps(
                    model, captured, resolved.alias, image, units, grid, patch_px,
                    mean, std, generator, batch_size, dev, geometry, margin_px, skip_outside_rf,
                )  # fmt: skip
                canvas = 2 * grid_side - 1
                for k, unit in enumerate(units.tolist()):
                    peak = float(disc[k].max())
                    if not peak > 0:
                        counts[unit] += 1  # a unit the occluder never moved still counts
                        sums.setdefault(unit, torch.zeros(canvas, canvas))
                        continue
                    gy, gx = (centers[k] / stride_px).round().long().tolist()
                    gy, gx = min(gy, grid_side - 1), min(gx, grid_side - 1)
                    acc = sums.setdefault(unit, torch.zeros(canvas, canvas))
                    top, left = grid_side - 1 - gy, grid_side - 1 - gx
                    acc[top : top + grid_side, left : left + grid_side] += disc[k] / peak
                    counts[unit] += 1
                if progress is not None:
                    progress(done, total)
    finally:
        net.model.to("cpu")

    result = LayerReceptiveField(resolved.alias, patch_px, stride_px, fraction)
    for unit in sorted(counts):
        n = counts[unit]
        if n == 0 or grid_side is None:
            heat = torch.zeros(0, 0)
        else:
            heat = sums[unit] / n
        rf_px, extent_px = rf_size_from_heatmap(heat, stride_px=stride_px, fraction=fraction)
        result.units.append(UnitReceptiveField(unit, heat, rf_px, extent_px, n))
    return result


def _discrepancy_maps(
    model, captured, alias, image, units, grid, patch_px, mean, std, generator, batch_size, dev,
    geometry: RFGeometry | None, margin_px: int, use_crops: bool,
):  # fmt: skip
    """For one image: discrepancy [n_units, G, G] and the pixel (row, col) at the center of each
    unit's max cell's receptive field [n, 2].

    With a finite RF geometry each unit is occluded on a crop of the image that holds its RF
    window (crop origin on the layer's stride grid, so the cell lands on a crop cell and sees
    the same pixels and the same border padding); otherwise on the whole image.
    """
    size = image.shape[-1]
    clean = _layer_output(model, captured, alias, image[None].to(dev))[0]
    h, w = clean.shape[-2:]
    base, index = clean[units].reshape(len(units), -1).max(1)
    base, rows, cols = base.cpu(), (index // w).cpu(), (index % w).cpu()
    if geometry is not None:
        cy, cx = geometry.cell_center_px(rows.double(), cols.double())
    else:  # no finite RF: place the cell proportionally in the image
        cy, cx = (rows.double() + 0.5) * size / h - 0.5, (cols.double() + 0.5) * size / w - 0.5
    centers = torch.stack((cy, cx), 1).float().clamp(0, size - 1)  # pixel indices

    ys, xs = torch.meshgrid(grid, grid, indexing="ij")
    positions = torch.stack((ys.flatten(), xs.flatten()), 1)
    # One patch per grid position, drawn whether or not the position is used, so skipping
    # positions never changes the noise the others get.
    bank = (torch.rand(len(positions), 3, patch_px, patch_px, generator=generator) - mean) / std
    disc = torch.zeros(len(units), len(positions))
    job = _Job(model, captured, alias, image, positions, bank, patch_px, batch_size, dev)
    everything = (0, size, 0, size)
    if geometry is None or not use_crops:
        disc[:] = job.run(everything, units, rows, cols, torch.arange(len(positions)), base)
        return disc.view(len(units), len(grid), len(grid)), centers

    reach = (geometry.size_px - 1) / 2 + margin_px
    jump = max(int(round(geometry.jump_px)), 1)
    half = patch_px // 2
    for k in range(len(units)):
        y_lo, y_hi = math.floor(cy[k] - reach), math.ceil(cy[k] + reach)
        x_lo, x_hi = math.floor(cx[k] - reach), math.ceil(cx[k] + reach)
        # Occluder positions whose patch [p - half, p - half + patch) touches the RF window.
        py, px = positions[:, 0], positions[:, 1]
        touch = (
            (py - half + patch_px - 1 >= y_lo) & (py - half <= y_hi)
            & (px - half + patch_px - 1 >= x_lo) & (px - half <= x_hi)
        )  # fmt: skip
        needed = torch.nonzero(touch).flatten()
        oy, ox = max(0, y_lo // jump * jump), max(0, x_lo // jump * jump)
        window = (oy, min(size, y_hi + 1), ox, min(size, x_hi + 1))
        one = units[k : k + 1]
        crop_rows, crop_cols = rows[k : k + 1] - oy // jump, cols[k : k + 1] - ox // jump
        values = job.run(
            window, one, crop_rows, crop_cols, needed, base[k : k + 1], check_crop=True
        )
        if values is None:  # the crop did not reproduce the unit's value: use the whole image
            values = job.run(
                everything, one, rows[k : k + 1], cols[k : k + 1], needed, base[k : k + 1]
            )
        disc[k, needed] = values[0, needed]
    return disc.view(len(units), len(grid), len(grid)), centers


def _layer_output(model, captured, alias, x):
    out = run_until_captured(model, x, captured)[alias].float()
    return out[:, :, None, None] if out.dim() == 2 else out


class _Job:
    """Occlude one image (or a crop of it) at chosen grid positions, batched."""

    def __init__(self, model, captured, alias, image, positions, bank, patch_px, batch_size, dev):
        self.model, self.captured, self.alias = model, captured, alias
        self.image, self.positions, self.bank = image, positions, bank
        self.patch_px, self.batch_size, self.dev = patch_px, batch_size, dev

    def run(self, window, units, rows, cols, needed, base, *, check_crop: bool = False):
        """|activation change| [len(units), all positions] (zeros where not needed) against
        ``base``, the units' whole-image values. With ``check_crop`` the clean crop is run
        first; None when a cell falls outside the crop or the crop does not reproduce ``base``
        (the caller then falls back to the whole image)."""
        oy, ey, ox, ex = window
        crop = self.image[:, oy:ey, ox:ex]
        out = torch.zeros(len(units), len(self.positions))
        units_d, rows_d, cols_d = units.to(self.dev), rows.to(self.dev), cols.to(self.dev)
        if check_crop:
            clean = _layer_output(self.model, self.captured, self.alias, crop[None].to(self.dev))
            h, w = clean.shape[2:]
            if not (0 <= int(rows.min()) and int(rows.max()) < h):
                return None
            if not (0 <= int(cols.min()) and int(cols.max()) < w):
                return None
            crop_base = clean[0, units_d, rows_d, cols_d].cpu()
            if not torch.allclose(crop_base, base, rtol=1e-4, atol=1e-5):
                return None
            base = crop_base  # compare occluded crops with the clean crop: same arithmetic
        half = self.patch_px // 2
        for start in range(0, len(needed), self.batch_size):
            chunk_index = needed[start : start + self.batch_size]
            batch = crop.expand(len(chunk_index), -1, -1, -1).clone()
            for b, (py, px) in enumerate(self.positions[chunk_index].tolist()):
                y0, x0 = max(py - half, oy), max(px - half, ox)
                y1, x1 = min(py - half + self.patch_px, ey), min(px - half + self.patch_px, ex)
                if y1 <= y0 or x1 <= x0:
                    continue
                patch = self.bank[chunk_index[b]]
                batch[b, :, y0 - oy : y1 - oy, x0 - ox : x1 - ox] = patch[
                    :, y0 - (py - half) : y1 - (py - half), x0 - (px - half) : x1 - (px - half)
                ]
            acts = _layer_output(self.model, self.captured, self.alias, batch.to(self.dev))
            values = acts[:, units_d, rows_d, cols_d].cpu()
            out[:, chunk_index] = (values - base[None]).abs().t()
        return out
