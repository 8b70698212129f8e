"""The numeric engine: streaming top-K and quantile sketches, single-pass extraction of unit
statistics (optionally with the kept images' maps and threshold-deferred IoU counts against label
maps), segmentation masks and tiles, and empirical receptive fields. Pure torch, no Django."""

from .batches import LabeledImageDataset, iter_labeled_batches
from .extract import (
    LabelSpec,
    UnitStats,
    activation_maps,
    autocast_dtype,
    extract_unit_stats,
    place_model,
    resolve_device,
    spatial_max,
)
from .iou import BinnedIoU, IoUCounts
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
    make_masks,
    make_montage,
    make_tile,
    mask_activation,
    mask_quantile,
    mask_rf_disk,
    masked_tile,
    tile_layers,
)
from .topk import RunningTopK

__all__ = [
    "BinnedIoU",
    "IoUCounts",
    "LabelSpec",
    "LabeledImageDataset",
    "MASK_RECIPES",
    "LayerReceptiveField",
    "RunningQuantile",
    "RunningTopK",
    "UnitReceptiveField",
    "UnitStats",
    "activation_maps",
    "apply_mask",
    "autocast_dtype",
    "estimate_receptive_fields",
    "extract_unit_stats",
    "heatmap_image",
    "iter_labeled_batches",
    "make_mask",
    "make_masks",
    "make_montage",
    "make_tile",
    "masked_tile",
    "mask_activation",
    "mask_quantile",
    "mask_rf_disk",
    "tile_layers",
    "place_model",
    "resolve_device",
    "rf_size_from_heatmap",
    "spatial_max",
]
