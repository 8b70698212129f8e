"""Layers of a loaded network: friendly aliases, resolution, forward hooks, and the layer table
(output shape, unit count, theoretical receptive field)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from .base import LoadedNetwork, NetworkLoadError

__all__ = [
    "LayerRow",
    "RFGeometry",
    "ResolvedLayer",
    "default_aliases",
    "resolve_layer",
    "resolve_layers",
    "forward_hooks",
    "capture_outputs",
    "layer_table",
    "theoretical_receptive_fields",
    "receptive_field_geometry",
    "run_until_captured",
]


@dataclass(frozen=True)
class ResolvedLayer:
    alias: str  # the friendly name when one exists, else the module path
    path: str  # the module path inside net.model
    module: nn.Module


@dataclass(frozen=True)
class LayerRow:
    """One row of ``layer_table``: ``output_shape`` is (C, H, W) (or (C,) for vector outputs)
    at the network's input size; ``receptive_field_px`` is the theoretical RF side length in
    input pixels (None when the output depends on the whole image, e.g. after global pooling)."""

    alias: str
    path: str
    output_shape: tuple[int, ...]
    units: int
    receptive_field_px: int | None
    stride_px: int | None


def default_aliases(arch: str, model: nn.Module) -> dict[str, str]:
    """Friendly layer names for known torchvision-style architectures.

    Conv aliases point at the ReLU that follows the conv, as in Caffe, whose in-place ReLU means
    the paper's 'conv5' blob is the rectified output.
    """
    arch = arch.lower()
    if arch == "alexnet":
        return {
            "conv1": "features.1", "pool1": "features.2",
            "conv2": "features.4", "pool2": "features.5",
            "conv3": "features.7", "conv4": "features.9",
            "conv5": "features.11", "pool5": "features.12",
            "fc6": "classifier.2", "fc7": "classifier.5",
        }  # fmt: skip
    if arch.startswith("vgg"):
        return _vgg_aliases(model)
    if arch.startswith(("resnet", "resnext", "wide_resnet")):
        return {f"layer{i}": f"layer{i}" for i in range(1, 5)}
    if arch.startswith("densenet"):
        # denseblock1, transition1, ..., denseblock4, norm5: forward order
        return {
            name: f"features.{name}"
            for name, _ in model.features.named_children()
            if name.startswith(("denseblock", "transition", "norm5"))
        }
    return {}


def _vgg_aliases(model: nn.Module) -> dict[str, str]:
    aliases: dict[str, str] = {}
    block, conv = 1, 0
    layers = list(model.features.named_children())
    for i, (name, module) in enumerate(layers):
        if isinstance(module, nn.Conv2d):
            conv += 1
            # Point at the ReLU after the conv (skipping a BatchNorm in the *_bn variants).
            target = name
            for later_name, later in layers[i + 1 : i + 3]:
                if isinstance(later, nn.ReLU):
                    target = later_name
                    break
            aliases[f"conv{block}_{conv}"] = f"features.{target}"
        elif isinstance(module, nn.MaxPool2d):
            aliases[f"pool{block}"] = f"features.{name}"
            block, conv = block + 1, 0
    return aliases


def resolve_layer(net: LoadedNetwork, name: str) -> ResolvedLayer:
    """Resolve an alias ('pool5') or a module path ('features.12') to the module."""
    modules = dict(net.model.named_modules())
    if name in net.layer_aliases:
        path = net.layer_aliases[name]
        alias = name
    elif name in modules and name != "":
        path = name
        alias = next((a for a, p in net.layer_aliases.items() if p == name), name)
    else:
        known = ", ".join(net.layer_aliases) or "none"
        top = ", ".join(n for n, _ in net.model.named_children())
        raise NetworkLoadError(
            f"unknown layer {name!r} for {net.arch}: use an alias ({known}) or a module path "
            f"(top-level modules: {top}; see layer_table() for all)"
        )
    if path not in modules:
        raise NetworkLoadError(f"alias {alias!r} points at {path!r}, which {net.arch} lacks")
    return ResolvedLayer(alias=alias, path=path, module=modules[path])


def resolve_layers(net: LoadedNetwork, names: Sequence[str]) -> list[ResolvedLayer]:
    layers = [resolve_layer(net, n) for n in names]
    seen: set[str] = set()
    for layer in layers:
        if layer.path in seen:
            raise NetworkLoadError(f"layer {layer.alias!r} ({layer.path}) was chosen twice")
        seen.add(layer.path)
    return layers


@contextmanager
def forward_hooks(
    layers: Sequence[ResolvedLayer], fn: Callable[[ResolvedLayer, torch.Tensor], None]
) -> Iterator[None]:
    """Call ``fn(layer, output)`` on every forward of each layer; hooks are removed on exit.

    ``fn`` runs *inside* the forward pass: with in-place ReLUs downstream, the tensor may be
    overwritten after the hook returns, so ``fn`` must reduce or copy it right away.
    """
    handles = []
    try:
        for layer in layers:

            def hook(_module, _inputs, output, _layer=layer):
                if isinstance(output, (tuple, list)):
                    output = output[0]
                fn(_layer, output)

            handles.append(layer.module.register_forward_hook(hook))
        yield
    finally:
        for handle in handles:
            handle.remove()


class _StopForward(Exception):
    pass


@contextmanager
def capture_outputs(
    layers: Sequence[ResolvedLayer], *, stop_early: bool = False
) -> Iterator[dict[str, torch.Tensor]]:
    """Context manager yielding a dict {alias: output} refreshed on every forward pass.

    Outputs are cloned (safe against in-place ops downstream). With ``stop_early=True`` the
    forward pass is abandoned as soon as every layer has produced its output; call the model via
    ``run_until_captured(model, x, captured)`` in that case.
    """
    captured: dict[str, torch.Tensor] = {}
    wanted = {layer.alias for layer in layers}

    def keep(layer: ResolvedLayer, output: torch.Tensor) -> None:
        captured[layer.alias] = output.detach().clone()
        if stop_early and wanted.issubset(captured):
            raise _StopForward

    with forward_hooks(layers, keep):
        yield captured


def run_until_captured(model: nn.Module, x: torch.Tensor, captured: dict) -> dict:
    """Run ``model(x)`` under ``capture_outputs(..., stop_early=True)``; returns ``captured``."""
    captured.clear()
    try:
        model(x)
    except _StopForward:
        pass
    return captured


# -- theoretical receptive field ------------------------------------------------------------


@dataclass(frozen=True)
class _RF:
    size: float  # RF side in input px; math.inf = whole image
    jump: float  # input px between adjacent output cells
    start: float = 0.0  # input-px coordinate of the center of output cell 0's RF


def _pair(v) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


def _apply_window(rf: _RF, kernel, stride, dilation, padding=0) -> _RF:
    k = _pair(kernel)[0]
    s = _pair(stride if stride is not None else kernel)[0]
    d = _pair(dilation)[0]
    k_eff = d * (k - 1) + 1
    if padding == "same":
        pad = (k_eff - 1) / 2
    elif padding == "valid":
        pad = 0
    else:
        pad = _pair(padding)[0]
    return _RF(
        rf.size + (k_eff - 1) * rf.jump,
        rf.jump * s,
        rf.start + ((k_eff - 1) / 2 - pad) * rf.jump,
    )


def _module_rf(module: nn.Module, rf: _RF) -> _RF:
    if isinstance(module, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):
        dilation = getattr(module, "dilation", 1)
        return _apply_window(rf, module.kernel_size, module.stride, dilation, module.padding)
    if isinstance(module, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.Linear, nn.Flatten)):
        out = getattr(module, "output_size", None)
        if out is not None and _pair(out) != (1, 1) and rf.size != math.inf:
            return rf  # e.g. AlexNet's AdaptiveAvgPool2d((6, 6)) on a 6x6 map is an identity
        return _RF(math.inf, rf.jump, rf.start)
    return rf


def _fx_receptive_fields(model: nn.Module, paths: set[str]) -> dict[str, _RF] | None:
    """RF per module path via a torch.fx graph (max over branches). None if tracing fails."""
    try:
        import torch.fx as fx
        import torch.nn.functional as F

        graph = fx.symbolic_trace(model).graph
    except Exception:  # noqa: BLE001 - many custom models are not traceable
        return None
    modules = dict(model.named_modules())
    rf_of: dict[fx.Node, _RF] = {}
    result: dict[str, _RF] = {}
    for node in graph.nodes:
        inputs = [rf_of[a] for a in node.all_input_nodes if a in rf_of]
        if node.op == "placeholder":
            rf_of[node] = _RF(1.0, 1.0)
            continue
        if not inputs:
            continue
        rf = max(inputs, key=lambda r: r.size)
        if node.op == "call_module":
            rf = _module_rf(modules[node.target], rf)
            # A module called once is recorded; nested paths resolve to their last leaf call.
            for path in paths:
                if node.target == path or node.target.startswith(path + "."):
                    result[path] = rf
        elif node.op == "call_function":
            if node.target in (F.max_pool2d, F.avg_pool2d):
                kernel = node.args[1] if len(node.args) > 1 else node.kwargs["kernel_size"]
                stride = node.args[2] if len(node.args) > 2 else node.kwargs.get("stride")
                padding = node.args[3] if len(node.args) > 3 else node.kwargs.get("padding", 0)
                rf = _apply_window(rf, kernel, stride or kernel, 1, padding)
            elif node.target in (F.adaptive_avg_pool2d, torch.flatten, F.linear):
                rf = _RF(math.inf, rf.jump, rf.start)
        rf_of[node] = rf
    return result


def _chain_receptive_fields(model: nn.Module, x: torch.Tensor, paths: set[str]) -> dict[str, _RF]:
    """Fallback: follow leaf modules in execution order (exact for plain sequential nets)."""
    order: list[str] = []
    name_of = {m: n for n, m in model.named_modules()}
    handles = [
        m.register_forward_hook(lambda mod, i, o: order.append(name_of[mod]))
        for m in model.modules()
        if not list(m.children())
    ]
    try:
        with torch.inference_mode():
            model(x)
    finally:
        for h in handles:
            h.remove()
    modules = dict(model.named_modules())
    rf, result = _RF(1.0, 1.0), {}
    for name in order:
        rf = _module_rf(modules[name], rf)
        for path in paths:
            if name == path or name.startswith(path + "."):
                result[path] = rf
    return result


@dataclass(frozen=True)
class RFGeometry:
    """Where a layer's cells look in the input: cell (i, j) depends only on input pixels within
    ``size_px / 2`` of (start_px + i * jump_px, start_px + j * jump_px) (0-based pixel centers).
    Exact for convs/pools with symmetric padding; TF-'same' padding can shift it by a pixel."""

    size_px: float
    jump_px: float
    start_px: float

    def cell_center_px(self, row, col):
        return self.start_px + row * self.jump_px, self.start_px + col * self.jump_px


def _layer_rfs(net: LoadedNetwork, layers: Sequence[ResolvedLayer]) -> dict[str, _RF]:
    paths = {layer.path for layer in layers}
    rfs = _fx_receptive_fields(net.model, paths)
    if rfs is None or not paths.issubset(rfs):
        x = torch.zeros(1, 3, net.input_size, net.input_size)
        rfs = _chain_receptive_fields(net.model, x, paths)
    return rfs


def receptive_field_geometry(net: LoadedNetwork, name: str) -> RFGeometry | None:
    """The theoretical RF geometry of one layer; None when it spans the whole image."""
    (layer,) = resolve_layers(net, [name])
    rf = _layer_rfs(net, [layer]).get(layer.path)
    if rf is None or rf.size == math.inf:
        return None
    return RFGeometry(rf.size, rf.jump, rf.start)


def theoretical_receptive_fields(
    net: LoadedNetwork, names: Sequence[str] | None = None
) -> dict[str, tuple[int | None, int]]:
    """{alias: (rf_px, stride_px)} at any input size; (None, None) means 'the whole image'
    (after global pooling or a Linear layer)."""
    layers = resolve_layers(net, names if names is not None else list(net.layer_aliases))
    rfs = _layer_rfs(net, layers)
    out = {}
    for layer in layers:
        rf = rfs.get(layer.path)
        if rf is None or rf.size == math.inf:
            out[layer.alias] = (None, None)
        else:
            out[layer.alias] = (int(round(rf.size)), int(round(rf.jump)))
    return out


def layer_table(net: LoadedNetwork, names: Sequence[str] | None = None) -> list[LayerRow]:
    """One row per layer (default: every alias, in forward order) at the network's input size."""
    layers = resolve_layers(net, names if names is not None else list(net.layer_aliases))
    x = torch.zeros(1, 3, net.input_size, net.input_size)
    with capture_outputs(layers) as captured, torch.inference_mode():
        net.model(x)
    rfs = theoretical_receptive_fields(net, [layer.alias for layer in layers])
    rows = []
    for layer in layers:
        shape = tuple(captured[layer.alias].shape[1:]) if layer.alias in captured else ()
        size, stride = rfs[layer.alias]
        rows.append(
            LayerRow(
                alias=layer.alias,
                path=layer.path,
                output_shape=shape,
                units=int(shape[0]) if shape else 0,
                receptive_field_px=size,
                stride_px=stride,
            )
        )
    return rows
