"""The numeric engine: streaming top-K and quantile sketches, single-pass extraction of unit
statistics, segmentation masks and tiles, and empirical receptive fields. Pure torch, no Django."""

from .extract import UnitStats, activation_maps, extract_unit_stats, resolve_device, spatial_max
from .quantile import RunningQuantile
from .receptive_field import (
    LayerReceptiveField,
    UnitReceptiveField,
    estimate_receptive_fields,
    heatmap_image,
    rf_size_from_heatmap,
)
from .segment import (
    MASK_RECIPES,
    apply_mask,
    make_mask,
    make_montage,
    make_tile,
    mask_activation,
    mask_quantile,
    mask_rf_disk,
)
from .topk import RunningTopK

__all__ = [
    "MASK_RECIPES",
    "LayerReceptiveField",
    "RunningQuantile",
    "RunningTopK",
    "UnitReceptiveField",
    "UnitStats",
    "activation_maps",
    "apply_mask",
    "estimate_receptive_fields",
    "extract_unit_stats",
    "heatmap_image",
    "make_mask",
    "make_montage",
    "make_tile",
    "mask_activation",
    "mask_quantile",
    "mask_rf_disk",
    "resolve_device",
    "rf_size_from_heatmap",
    "spatial_max",
]
