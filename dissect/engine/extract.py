"""One forward pass per batch, all chosen layers at once: per image and unit the spatial max and
its location feed a running top-K, a running bottom-K (negative controls) and a quantile sketch
of every activation value. Memory is O(units x K), independent of the number of images."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from dissect.networks import LoadedNetwork, forward_hooks, resolve_layers
from dissect.networks.layers import ResolvedLayer

from .quantile import RunningQuantile
from .topk import RunningTopK

__all__ = [
    "UnitStats",
    "extract_unit_stats",
    "spatial_max",
    "activation_maps",
    "resolve_device",
]

FORMAT_VERSION = 1


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """'auto' -> cuda when available, else cpu."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def spatial_max(activations: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per image and unit, the max over space and its (row, col).

    ``activations`` [N, U, H, W] (or [N, U] for vector layers) -> scores float32 [N, U],
    positions int32 [N, U, 2]. The first maximal cell in row-major order wins ties.
    """
    if activations.dim() == 2:
        scores = activations.float()
        return scores, torch.zeros(*scores.shape, 2, dtype=torch.int32, device=scores.device)
    n, u = activations.shape[:2]
    width = activations.shape[-1]  # [N, U, L] maps count as one row of L cells
    flat = activations.reshape(n, u, math.prod(activations.shape[2:]))
    scores, index = flat.max(dim=2)
    positions = torch.stack((index // width, index % width), dim=-1).to(torch.int32)
    return scores.float(), positions


@dataclass
class UnitStats:
    """Everything extraction keeps for one layer: ``top`` (K best images per unit),
    ``controls`` (lowest-scoring images per unit), ``quantile`` (sketch of all activation
    values per unit), ``n_images`` and the activation map shape ``map_shape`` (H, W)."""

    layer: str
    module_path: str
    num_units: int
    map_shape: tuple[int, int]
    top: RunningTopK
    controls: RunningTopK
    quantile: RunningQuantile
    n_images: int = 0

    @classmethod
    def empty(
        cls,
        layer: str,
        module_path: str,
        num_units: int,
        map_shape: tuple[int, int],
        *,
        top_k: int = 60,
        controls: int = 20,
        quantile_bits: int = 6,
        device: torch.device | str = "cpu",
    ) -> UnitStats:
        return cls(
            layer=layer,
            module_path=module_path,
            num_units=num_units,
            map_shape=tuple(map_shape),
            top=RunningTopK(top_k, num_units, largest=True).to(device),
            controls=RunningTopK(controls, num_units, largest=False).to(device),
            quantile=RunningQuantile(num_units, mantissa_bits=quantile_bits, device=device),
        )

    def add(self, activations: torch.Tensor, image_ids: torch.Tensor) -> None:
        """Add a batch of activations [N, U, H, W] (or [N, U]) for images ``image_ids`` [N]."""
        scores, positions = spatial_max(activations)
        ids = torch.as_tensor(image_ids, dtype=torch.int64, device=scores.device)
        self.top.add(scores, ids, positions)
        self.controls.add(scores, ids, positions)
        self.quantile.add(activations)
        self.n_images += int(activations.shape[0])

    def merge(self, other: UnitStats) -> UnitStats:
        """Fold another shard's stats for the same layer into this one (associative,
        commutative); returns self."""
        if (other.layer, other.num_units, other.map_shape) != (
            self.layer,
            self.num_units,
            self.map_shape,
        ):
            raise ValueError(
                f"cannot merge stats of layer {other.layer!r} ({other.num_units} units, map "
                f"{other.map_shape}) into {self.layer!r} ({self.num_units}, {self.map_shape})"
            )
        self.top.merge(other.top)
        self.controls.merge(other.controls)
        self.quantile.merge(other.quantile)
        self.n_images += other.n_images
        return self

    def threshold(self, q: float = 0.995) -> torch.Tensor:
        """Per-unit activation quantile (default: NetDissect's top-0.5% threshold), float32 [U]."""
        return self.quantile.quantile(q)

    def to(self, device) -> UnitStats:
        self.top.to(device)
        self.controls.to(device)
        self.quantile.to(device)
        return self

    def state_dict(self) -> dict:
        return {
            "format": "crowddissect.unitstats",
            "version": FORMAT_VERSION,
            "layer": self.layer,
            "module_path": self.module_path,
            "num_units": self.num_units,
            "map_shape": list(self.map_shape),
            "n_images": self.n_images,
            "top": self.top.state_dict(),
            "controls": self.controls.state_dict(),
            "quantile": self.quantile.state_dict(),
        }

    @classmethod
    def from_state_dict(cls, state: dict) -> UnitStats:
        if state.get("format") != "crowddissect.unitstats":
            raise ValueError("not a UnitStats file")
        if int(state.get("version", 0)) > FORMAT_VERSION:
            raise ValueError(f"UnitStats format version {state['version']} is newer than this code")
        return cls(
            layer=state["layer"],
            module_path=state["module_path"],
            num_units=int(state["num_units"]),
            map_shape=tuple(int(v) for v in state["map_shape"]),
            top=RunningTopK.from_state_dict(state["top"]),
            controls=RunningTopK.from_state_dict(state["controls"]),
            quantile=RunningQuantile.from_state_dict(state["quantile"]),
            n_images=int(state["n_images"]),
        )

    def save(self, path: str | Path) -> None:
        """Write plain tensors/dicts with ``torch.save`` (loadable with weights_only=True)."""
        torch.save(self.state_dict(), Path(path))

    @classmethod
    def load(cls, path: str | Path) -> UnitStats:
        try:
            state = torch.load(Path(path), map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001
            raise ValueError(f"{path}: not a readable UnitStats file ({exc})") from exc
        try:
            return cls.from_state_dict(state)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{path}: not a UnitStats file ({exc})") from exc


def _autocast(device: torch.device, dtype: torch.dtype | None):
    if dtype is None or dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def extract_unit_stats(
    net: LoadedNetwork,
    layers: Sequence[str],
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    *,
    top_k: int = 60,
    controls: int = 20,
    quantile_bits: int = 6,
    device: str | torch.device = "auto",
    dtype: torch.dtype | None = None,
    channels_last: bool = False,
    progress: Callable[[int, int | None], None] | None = None,
    total: int | None = None,
) -> dict[str, UnitStats]:
    """Run ``net`` over ``batches`` of ``(image_ids int64 [n], images float [n, 3, S, S])``
    (already preprocessed, e.g. from ``dissect.images.iter_image_batches``) and return
    ``{layer_alias: UnitStats}`` (on the CPU) for the chosen layers (aliases or module paths).

    One forward pass per batch serves every layer (forward hooks). ``device='auto'`` uses CUDA
    when available; ``dtype`` (torch.float16 / torch.bfloat16) turns on autocast for the forward
    pass (statistics stay float32); ``channels_last`` sets that memory format.
    ``progress(images_done, total)`` is called after each batch (``total`` as given).
    A layer gets empty stats (``n_images == 0``) when no batch arrives, so an empty shard
    still merges.
    """
    dev = resolve_device(device)
    resolved = resolve_layers(net, layers)
    model = net.model.to(dev)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    stats: dict[str, UnitStats] = {}
    current_ids: list[torch.Tensor] = []

    def on_output(layer: ResolvedLayer, output: torch.Tensor) -> None:
        if layer.alias not in stats:
            shape = {2: (1, 1), 3: (1, output.shape[-1])}.get(output.dim(), output.shape[2:4])
            shape = tuple(int(v) for v in shape)
            stats[layer.alias] = UnitStats.empty(
                layer.alias, layer.path, int(output.shape[1]), shape,
                top_k=top_k, controls=controls, quantile_bits=quantile_bits, device=dev,
            )  # fmt: skip
        stats[layer.alias].add(output.detach(), current_ids[0])

    done = 0
    try:
        with torch.inference_mode(), forward_hooks(resolved, on_output):
            for image_ids, images in batches:
                ids = torch.as_tensor(image_ids, dtype=torch.int64)
                if ids.numel() == 0:
                    continue
                x = images.to(dev, non_blocking=True)
                if channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                current_ids[:] = [ids.to(dev)]
                with _autocast(dev, dtype):
                    model(x)
                done += int(ids.numel())
                if progress is not None:
                    progress(done, total)
        missing = [layer for layer in resolved if layer.alias not in stats]
        if missing:
            # No images at all: one dummy pass with zero-length slices gives each layer its shape.
            current_ids[:] = [torch.empty(0, dtype=torch.int64, device=dev)]
            with (
                torch.inference_mode(),
                forward_hooks(missing, lambda lay, out: on_output(lay, out[:0])),
            ):
                model(torch.zeros(1, 3, net.input_size, net.input_size, device=dev))
    finally:
        net.model.to("cpu")
    return {layer.alias: stats[layer.alias].to("cpu") for layer in resolved}


def activation_maps(
    net: LoadedNetwork,
    layer: str,
    images: torch.Tensor,
    *,
    units: Sequence[int] | torch.Tensor | None = None,
    device: str | torch.device = "auto",
    batch_size: int = 64,
) -> torch.Tensor:
    """Activation maps of one layer for preprocessed ``images`` [N, 3, S, S]: float32
    [N, U', H, W] on the CPU (U' = len(units) when given). Used by rendering to re-run only the
    top-K images of a unit. The forward pass stops at the layer."""
    from dissect.networks.layers import capture_outputs, run_until_captured

    dev = resolve_device(device)
    (resolved,) = resolve_layers(net, [layer])
    model = net.model.to(dev)
    index = None if units is None else torch.as_tensor(units, dtype=torch.int64)
    out = []
    try:
        with torch.inference_mode(), capture_outputs([resolved], stop_early=True) as captured:
            for start in range(0, images.shape[0], batch_size):
                run_until_captured(model, images[start : start + batch_size].to(dev), captured)
                maps = captured[resolved.alias].float()
                if maps.dim() == 2:
                    maps = maps[:, :, None, None]
                if index is not None:
                    maps = maps.index_select(1, index.to(maps.device))
                out.append(maps.cpu())
    finally:
        net.model.to("cpu")
    return torch.cat(out) if out else torch.empty(0)
