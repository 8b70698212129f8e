"""``load_network``: one entry point for torchvision architectures with checkpoints, the demo
networks and EfficientNet-Lite0."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

from torch import nn

from .base import LoadedNetwork, NetworkLoadError, default_preprocessing
from .checkpoints import load_state_dict_strict, read_checkpoint, sha256_file
from .classes import read_class_names
from .layers import default_aliases

__all__ = ["load_network", "DEMO_NETWORKS", "EFFICIENTNET_ARCHS", "torchvision_archs"]

DEMO_NETWORKS = ("demo-places", "demo-objects")
EFFICIENTNET_ARCHS = ("efficientnet_lite0",)
# Places365 AlexNet was trained at 227 px (Caffe); keep the paper's geometry for it.
_INPUT_SIZE = {"alexnet": 227}


def torchvision_archs() -> list[str]:
    import torchvision

    return sorted(torchvision.models.list_models(module=torchvision.models))


def load_network(
    arch: str,
    *,
    checkpoint: str | Path | None = None,
    class_names: Sequence[str] | str | Path | None = None,
    trust_pickle: bool = False,
    preprocessing: dict | None = None,
) -> LoadedNetwork:
    """Load a network for dissection (model on the CPU, eval mode).

    - ``arch``: a torchvision model name ('alexnet', 'resnet18', 'vgg16', 'densenet161', ...),
      'demo-places' / 'demo-objects', or 'efficientnet_lite0'.
    - ``checkpoint``: a state_dict file, a Places365 release file ({'state_dict': ...} with
      'module.' prefixes), a TorchScript file, or (``trust_pickle=True`` only) a whole pickled
      model. None: random init for torchvision archs (useful for tests), packaged weights for
      the demo networks and EfficientNet-Lite0.
    - ``class_names``: a list or a class-name file (one per line, or categories_places365.txt).
      Default: the ImageNet names for 1000-class nets, else 'class_0', 'class_1', ...
    - ``preprocessing``: overrides merged into the architecture's default preprocessing.
    Raises ``NetworkLoadError`` (or its subclass ``CheckpointMismatchError``) with a message
    that names the file and what to do.
    """
    names = _read_names(class_names)
    if arch in DEMO_NETWORKS:
        net = _load_demo(arch)
    elif arch in EFFICIENTNET_ARCHS:
        from .efficientnet import load_efficientnet_lite0

        net = load_efficientnet_lite0(checkpoint=checkpoint, trust_pickle=trust_pickle)
    else:
        net = _load_torchvision(arch, checkpoint, names, trust_pickle)
    if names is not None:
        if len(names) != net.num_classes:
            raise NetworkLoadError(
                f"{len(names)} class names given but {arch} has {net.num_classes} outputs; "
                "use the class-name file that belongs to this checkpoint"
            )
        net.class_names = list(names)
    if preprocessing:
        net.preprocessing = {**net.preprocessing, **preprocessing}
    net.model.eval()
    return net


def _read_names(class_names) -> list[str] | None:
    if class_names is None:
        return None
    if isinstance(class_names, (str, Path)):
        return read_class_names(class_names)
    return [str(n) for n in class_names]


def _load_demo(arch: str) -> LoadedNetwork:
    try:
        from dissect.demo.networks import load_demo_network
    except ImportError as exc:
        raise NetworkLoadError(
            f"the demo network {arch!r} is not available in this installation "
            f"(dissect.demo.networks.load_demo_network could not be imported: {exc})"
        ) from exc
    try:
        model, class_names, preprocessing, aliases, sha = load_demo_network(arch)
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        # e.g. the demo checkpoints have not been trained yet; the demo's message says how.
        raise NetworkLoadError(f"demo network {arch!r} could not be loaded: {exc}") from exc
    return LoadedNetwork(
        model=model.eval(),
        arch=arch,
        class_names=list(class_names),
        preprocessing=dict(preprocessing),
        layer_aliases=dict(aliases),
        weights_sha256=sha,
        source=f"dissect.demo:{arch}",
    )


def _build_torchvision(arch: str, num_classes: int) -> nn.Module:
    import torchvision

    if arch not in torchvision_archs():
        raise NetworkLoadError(
            f"unknown architecture {arch!r}: use a torchvision model name (e.g. alexnet, vgg16, "
            f"resnet18, resnet50, densenet161), one of {', '.join(DEMO_NETWORKS)}, or "
            f"{', '.join(EFFICIENTNET_ARCHS)}"
        )
    kwargs = {"weights": None, "num_classes": num_classes}
    if arch.startswith("inception") or arch.startswith("googlenet"):
        kwargs.update(aux_logits=False, init_weights=False)
    return torchvision.models.get_model(arch, **kwargs)


def _classifier_key(model: nn.Module) -> str | None:
    """The weight key of the last Linear (or 1x1 conv classifier, as in SqueezeNet)."""
    last = None
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            last = name
    if last is None:
        for name, module in model.named_modules():
            if isinstance(module, nn.Conv2d) and name.startswith("classifier"):
                last = name
    return f"{last}.weight" if last is not None else None


def _imagenet_names() -> list[str]:
    from torchvision.models import ResNet18_Weights

    return list(ResNet18_Weights.IMAGENET1K_V1.meta["categories"])


def _default_names(num_classes: int) -> list[str]:
    return _imagenet_names() if num_classes == 1000 else [f"class_{i}" for i in range(num_classes)]


def _tensor_digest(model: nn.Module) -> str:
    digest = hashlib.sha256()
    for key, value in sorted(model.state_dict().items()):
        digest.update(key.encode())
        digest.update(value.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def _load_torchvision(arch, checkpoint, names, trust_pickle) -> LoadedNetwork:
    source = "random init (no checkpoint)"
    state = None
    if checkpoint is not None:
        state = read_checkpoint(checkpoint, trust_pickle=trust_pickle)
        source = str(checkpoint)
    if isinstance(state, nn.Module):
        model = state
        num_classes = _out_features(model)
    else:
        model = _build_torchvision(arch, 1000)
        key = _classifier_key(model)
        if state is not None and key in state:
            num_classes = int(state[key].shape[0])
        elif names is not None:
            num_classes = len(names)
        else:
            num_classes = 1000
        if num_classes != 1000:
            model = _build_torchvision(arch, num_classes)
        if state is not None:
            load_state_dict_strict(model, state, arch=arch, source=source)
    # Default names; load_network checks the caller's names against the output count.
    names = _default_names(num_classes)
    sha = sha256_file(checkpoint) if checkpoint is not None else _tensor_digest(model)
    return LoadedNetwork(
        model=model.eval(),
        arch=arch,
        class_names=list(names),
        preprocessing=default_preprocessing(_INPUT_SIZE.get(arch, 224)),
        layer_aliases=default_aliases(arch, model),
        weights_sha256=sha,
        source=source,
    )


def _out_features(model: nn.Module) -> int:
    key = _classifier_key(model)
    if key is None:
        raise NetworkLoadError("the pickled model has no Linear classifier to count classes from")
    return int(model.state_dict()[key].shape[0])
