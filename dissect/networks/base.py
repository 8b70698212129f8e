"""The loaded-network record and the errors raised while loading one."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

__all__ = ["LoadedNetwork", "NetworkLoadError", "CheckpointMismatchError", "default_preprocessing"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def default_preprocessing(input_size: int = 224) -> dict:
    """torchvision's ImageNet recipe: resize the short side to 256/224 of the crop, center crop."""
    return {
        "input_size": int(input_size),
        "resize": int(round(input_size * 256 / 224)),
        "crop": "center",
        "mean": list(IMAGENET_MEAN),
        "std": list(IMAGENET_STD),
    }


class NetworkLoadError(ValueError):
    """A network, checkpoint or class-name file could not be loaded; the message says why and
    what to do."""


class CheckpointMismatchError(NetworkLoadError):
    """The checkpoint's tensors do not fit the architecture (missing/unexpected/mis-shaped keys)."""

    def __init__(self, message: str, *, missing=(), unexpected=(), mismatched=()):
        super().__init__(message)
        self.missing = list(missing)
        self.unexpected = list(unexpected)
        self.mismatched = list(mismatched)


@dataclass
class LoadedNetwork:
    """A network ready for dissection.

    - ``model``: ``torch.nn.Module`` in eval mode, on the CPU.
    - ``arch``: architecture name ('resnet18', 'alexnet', 'demo-places', 'efficientnet_lite0', ...).
    - ``class_names``: one name per output class (index = class id).
    - ``preprocessing``: ``{input_size, resize, crop, mean, std}``: resize the short side to
      ``resize`` px, then ``crop`` ('center') a square of ``input_size`` px (crop 'none': resize
      the whole image to ``input_size`` x ``input_size``), to float in [0, 1], then normalize.
    - ``layer_aliases``: ``{alias: module_path}``, e.g. ``{'pool5': 'features.12'}``.
    - ``weights_sha256``: hex digest of the weights file (or of the tensors for built-in nets).
    - ``source``: the checkpoint path or a short description of where the weights came from.
    """

    model: torch.nn.Module
    arch: str
    class_names: list[str]
    preprocessing: dict
    layer_aliases: dict[str, str] = field(default_factory=dict)
    weights_sha256: str = ""
    source: str = ""

    @property
    def input_size(self) -> int:
        return int(self.preprocessing["input_size"])

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def describe(self) -> dict:
        """JSON-friendly summary (everything except the model) for a Network row."""
        return {
            "arch": self.arch,
            "num_classes": self.num_classes,
            "preprocessing": dict(self.preprocessing),
            "layer_aliases": dict(self.layer_aliases),
            "weights_sha256": self.weights_sha256,
            "source": str(self.source) if isinstance(self.source, Path) else self.source,
        }
