"""Networks for dissection: loading (torchvision + checkpoints, demo nets, EfficientNet-Lite0),
class names, layer aliases/resolution, forward hooks and the layer table."""

from .base import CheckpointMismatchError, LoadedNetwork, NetworkLoadError, default_preprocessing
from .checkpoints import read_checkpoint, sha256_file
from .classes import parse_class_names, read_class_names
from .layers import (
    LayerRow,
    ResolvedLayer,
    RFGeometry,
    capture_outputs,
    forward_hooks,
    layer_table,
    receptive_field_geometry,
    resolve_layer,
    resolve_layers,
    run_until_captured,
    theoretical_receptive_fields,
)
from .loading import DEMO_NETWORKS, EFFICIENTNET_ARCHS, load_network

__all__ = [
    "CheckpointMismatchError",
    "DEMO_NETWORKS",
    "EFFICIENTNET_ARCHS",
    "LayerRow",
    "LoadedNetwork",
    "NetworkLoadError",
    "RFGeometry",
    "ResolvedLayer",
    "capture_outputs",
    "default_preprocessing",
    "forward_hooks",
    "layer_table",
    "load_network",
    "parse_class_names",
    "read_checkpoint",
    "read_class_names",
    "receptive_field_geometry",
    "resolve_layer",
    "resolve_layers",
    "run_until_captured",
    "sha256_file",
    "theoretical_receptive_fields",
]
