"""Reading checkpoint files: plain state_dicts, the Places365 release format, TorchScript, and
(only when trusted) whole pickled models; fitting a state_dict to an architecture with a clear
error when it does not fit."""

from __future__ import annotations

import pickle
import re
import warnings
import zipfile
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from dissect.hashing import sha256_file

from .base import CheckpointMismatchError, NetworkLoadError

__all__ = [
    "sha256_file",
    "read_checkpoint",
    "normalize_state_dict",
    "load_state_dict_strict",
    "guess_arch",
]

_STATE_KEYS = ("state_dict", "model_state_dict", "model", "net")


def _is_torchscript(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
    return any(n.endswith("constants.pkl") or "/code/" in n for n in names)


# Terminal escape sequences (torch bolds part of its unpickling message) and other control
# characters never belong in a message a page, the API or a log line shows.
_ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_])")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def plain_text(text: str) -> str:
    """``text`` without terminal escape codes and control characters."""
    return _CONTROL.sub("", _ANSI.sub("", text))


def _first_line(exc: BaseException) -> str:
    text = plain_text(str(exc))
    return text.splitlines()[0] if text else ""


def read_checkpoint(path: str | Path, *, trust_pickle: bool = False):
    """Load a checkpoint file on the CPU.

    Returns either a state_dict (``dict[str, Tensor]``, prefixes such as 'module.' removed) or,
    for a whole pickled model (only with ``trust_pickle=True``), the ``nn.Module``.
    TorchScript files give their state_dict (load it into the matching eager architecture so
    forward hooks work).
    """
    path = Path(path)
    if not path.is_file():
        raise NetworkLoadError(f"{path}: checkpoint file not found")
    if _is_torchscript(path):
        try:
            with warnings.catch_warnings():  # TorchScript is deprecated but still in the wild
                warnings.simplefilter("ignore", FutureWarning)
                scripted = torch.jit.load(str(path), map_location="cpu")
        except Exception as exc:  # noqa: BLE001
            raise NetworkLoadError(
                f"{path}: looks like TorchScript but failed to load: {plain_text(str(exc))}"
            ) from exc
        return normalize_state_dict(scripted.state_dict(), source=str(path))
    try:
        obj = torch.load(path, map_location="cpu", weights_only=not trust_pickle)
    except pickle.UnpicklingError as exc:
        raise NetworkLoadError(
            f"{path}: the file holds pickled Python objects (e.g. a whole saved model), which "
            "can run arbitrary code when loaded. Re-save it as a state_dict "
            "(torch.save(model.state_dict(), path)) or, only if you trust where the file came "
            f"from, load it with trust_pickle=True. Detail: {_first_line(exc)}"
        ) from exc
    except Exception as exc:  # noqa: BLE001 - torch raises many types for non-checkpoints
        raise NetworkLoadError(
            f"{path}: not a PyTorch checkpoint torch.load can read ({type(exc).__name__}: "
            f"{_first_line(exc)})"
        ) from exc
    if isinstance(obj, nn.Module):
        return obj
    return normalize_state_dict(obj, source=str(path))


def normalize_state_dict(obj, *, source: str = "checkpoint") -> dict[str, torch.Tensor]:
    """Unwrap {'state_dict': ...}-style dicts and strip DataParallel 'module.' prefixes
    (Places365 uses both 'module.conv1.weight' and 'features.module.0.weight')."""
    if isinstance(obj, Mapping):
        for key in _STATE_KEYS:
            inner = obj.get(key)
            if isinstance(inner, Mapping) and inner and _all_tensors(inner):
                obj = inner
                break
    if not isinstance(obj, Mapping) or not obj or not _all_tensors(obj):
        kind = type(obj).__name__
        keys = list(obj)[:5] if isinstance(obj, Mapping) else []
        raise NetworkLoadError(
            f"{source}: no state_dict found (got a {kind}"
            + (f" with keys {keys}" if keys else "")
            + "); expected a dict of tensors or a dict with a 'state_dict' entry"
        )
    out = {}
    for key, value in obj.items():
        key = key.removeprefix("module.").replace(".module.", ".")
        out[key] = value
    return out


def _all_tensors(mapping: Mapping) -> bool:
    return all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in mapping.items())


def guess_arch(keys) -> str | None:
    """A rough architecture family from state_dict key names, for error messages."""
    keys = set(keys)
    if "layer4.0.conv1.weight" in keys:
        return (
            "resnet50 / resnet101 / resnet152"
            if "layer4.0.conv3.weight" in keys
            else "resnet18 / resnet34"
        )
    if any(k.startswith("features.denseblock") for k in keys):
        return "densenet121 / densenet161 / densenet169 / densenet201"
    if "classifier.6.weight" in keys:
        n_conv = sum(1 for k in keys if k.startswith("features.") and k.endswith(".weight"))
        return "alexnet" if n_conv == 5 else "vgg11 / vgg13 / vgg16 / vgg19 (with _bn if BatchNorm)"
    if any(k.startswith("blocks.") for k in keys) and "conv_stem.weight" in keys:
        return "efficientnet_lite0 (timm layout)"
    return None


def _sample(items, n: int = 5) -> str:
    items = list(items)
    shown = ", ".join(items[:n])
    return shown + (f", ... ({len(items)} in all)" if len(items) > n else f" ({len(items)})")


def load_state_dict_strict(
    model: nn.Module, state_dict: Mapping[str, torch.Tensor], *, arch: str, source: str
) -> None:
    """Load every tensor or raise ``CheckpointMismatchError`` naming missing, unexpected and
    mis-shaped keys (a few of each, with counts) and what to do about it."""
    own = model.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    mismatched = [
        f"{k} {tuple(state_dict[k].shape)} vs {tuple(own[k].shape)}"
        for k in own
        if k in state_dict and tuple(state_dict[k].shape) != tuple(own[k].shape)
    ]
    # BatchNorm's num_batches_tracked is absent from old checkpoints and harmless to miss.
    missing_real = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing_real or unexpected or mismatched:
        parts = [f"{source}: the checkpoint does not fit architecture {arch!r}:"]
        if missing_real:
            parts.append(f"missing keys: {_sample(missing_real)};")
        if unexpected:
            parts.append(f"unexpected keys: {_sample(unexpected)};")
        if mismatched:
            parts.append(f"shape mismatches (checkpoint vs model): {_sample(mismatched, 3)};")
        guess = guess_arch(state_dict)
        if guess and arch not in guess.split(" / "):
            parts.append(f"the keys look like {guess}: pass that architecture instead.")
        else:
            parts.append(
                "check that the architecture name matches the one the checkpoint was trained "
                "with, and that the class count matches the class-name file."
            )
        raise CheckpointMismatchError(
            " ".join(parts), missing=missing_real, unexpected=unexpected, mismatched=mismatched
        )
    model.load_state_dict(state_dict, strict=False)
