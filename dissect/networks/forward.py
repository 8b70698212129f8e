"""One forward pass that returns class probabilities and the activations of chosen layers."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from dissect.engine.extract import place_model
from dissect.networks.base import LoadedNetwork
from dissect.networks.layers import capture_outputs, resolve_layers


def forward_with_layers(
    net: LoadedNetwork, layers: Sequence[str], x: torch.Tensor, *, device: str = "auto"
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """One forward pass of ``x`` [N, 3, S, S]: (class probabilities [N, C], {layer: float32
    activations [N, U, h, w]}) on the CPU. Hooks on ``layers`` only; removed afterwards. The
    model stays on ``device`` (``place_model``)."""
    # Moved once (a no-op when the weights are there already) and left there: evaluation and
    # explain call this per batch, and copying the weights back each time costs on a GPU.
    dev = place_model(net, device)
    resolved = resolve_layers(net, list(layers)) if layers else []
    with torch.inference_mode(), capture_outputs(resolved) as captured:
        logits = net.model(x.to(dev))
        acts = {}
        for layer in resolved:
            act = captured[layer.alias].float()
            if act.dim() == 2:  # a fully connected layer: one "pixel" per unit
                act = act[:, :, None, None]
            acts[layer.alias] = act.cpu()
    if isinstance(logits, (tuple, list)):
        logits = logits[0]
    probs = torch.softmax(logits.float().reshape(logits.shape[0], -1), dim=1).cpu()
    # Labeled units name their layer by alias or module path: answer under the name asked for.
    by_name = {}
    for name, layer in zip(layers, resolved, strict=True):
        by_name[name] = acts[layer.alias]
    return probs, by_name
