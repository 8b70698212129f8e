"""A run's parameters, once: type, range, default and help of each. ``run_create`` checks them
with ``RUN_PARAMETERS.clean``; ``RunForm``, ``RunCreateSerializer`` and ``manage.py dissect``
build their fields from the same entries, so every door refuses a bad value with one message.

``RUN_PARAMETERS`` are the main ones; ``RUN_OPTIONS`` the advanced ones (``run_create(options=)``,
the API's ``options`` object, the command's advanced group). A new run option is one more
``Param`` in ``RUN_OPTIONS``.
"""

from __future__ import annotations

from core.errors import MAX_INT64
from core.parameters import Param, ParamSet

SEGMENTATIONS = ("rf-disk", "activation", "quantile")
DEVICES = ("auto", "cpu", "cuda")

RUN_PARAMETERS = ParamSet((
    Param("top_k", int, 60, "Top images kept per unit.", low=1, high=1000),
    Param("controls", int, 3, "Lowest-scoring control images kept per unit.", low=0, high=100),
    Param("shard_size", int, 1000, "Images per extraction shard.", low=1, high=1_000_000),
    Param("segmentation", str, "quantile", "How a unit's region in a tile is drawn.",
          choices=SEGMENTATIONS),
    Param("receptive_field", bool, False, "Measure each layer's empirical receptive field (slow)."),
    Param("device", str, "auto", "Where the network runs.", choices=DEVICES),
    Param("tile_px", int, 120, "Side of a unit's tile in pixels.", low=16, high=512),
    Param("batch_size", int, 32, "Images per forward pass.", low=1, high=4096),
    Param("workers", int, 0, "Image decoding processes.", low=0, high=64),
    Param("seed", int, 0, "Random seed of the run.", low=0, high=MAX_INT64),
))  # fmt: skip

RUN_OPTIONS = ParamSet((
    Param("quantile", float, 0.995, "Activation quantile of each unit's threshold.",
          low=0.0, high=1.0, open_low=True, open_high=True),
    Param("montage_tile_px", int, 64, "Side of a montage tile in pixels.", low=16, high=512),
    # Empirical receptive field: top images per unit, occluder side and grid stride (paper: 11, 3).
    Param("rf_images", int, 5, "Top images per unit for the empirical receptive field.",
          low=1, high=100),
    Param("rf_patch_px", int, 11, "Occluder side in pixels.", low=1, high=1024),
    Param("rf_stride_px", int, 3, "Occluder grid stride in pixels.", low=1, high=1024),
    # The automatic labels of the one pass: None = when the image set has pixel labels.
    Param("auto_labels", bool, None,
          "Label units automatically from the image set's pixel labels (default: when it has them).",
          nullable=True),
    Param("iou_denominator", str, "plain",
          "IoU union of automatic labels: plain, or category (NetDissect's: unit area over images "
          "annotated in the category).", choices=("plain", "category")),
    Param("iou_px", int, None,
          "Side at which masks meet label maps (default: the label maps' own size).",
          low=1, high=4096, nullable=True),
))  # fmt: skip

# Options a run stores only when they are given (the stages read them with their own fallback).
STORED_WHEN_GIVEN = ("auto_labels", "iou_denominator", "iou_px")

# What a run stores when nothing is given.
DEFAULTS: dict = {
    **RUN_PARAMETERS.defaults(),
    **{k: v for k, v in RUN_OPTIONS.defaults().items() if k not in STORED_WHEN_GIVEN},
}
del DEFAULTS["seed"]  # a column of the run, not one of its stored parameters
