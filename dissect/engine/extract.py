"""One forward pass per batch, all chosen layers at once: per image and unit the spatial max and
its location feed a running top-K, a running bottom-K (negative controls) and a quantile sketch
of every activation value; optionally the top-K / control images' activation maps (for rendering
without a second pass) and threshold-deferred IoU counts against label maps (automatic labels
without a second pass, ``dissect.engine.iou``). Memory is O(units x K [x h x w]) plus
O(units x labels x bins), independent of the number of images.

Everything is accumulated in torch on the device the activations are on (CUDA when present): no
batch's feature maps are copied to the host; state moves to the CPU only at the end / for saving.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from dissect.netdissect import DEFAULT_QUANTILE
from dissect.networks import LoadedNetwork, forward_hooks, resolve_layers
from dissect.networks.layers import ResolvedLayer

from .iou import BinnedIoU, IoUCounts
from .quantile import RunningQuantile
from .topk import RunningTopK

__all__ = [
    "LabelSpec",
    "UnitStats",
    "autocast_dtype",
    "extract_unit_stats",
    "place_model",
    "spatial_max",
    "activation_maps",
    "resolve_device",
]

# 1: top/controls/quantile. 2: + optional "iou" (BinnedIoU state), "iou_level", top/controls
# "maps". Version-1 files still load.
FORMAT_VERSION = 2


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """'auto' -> cuda when available, else cpu."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def place_model(
    net: LoadedNetwork, device: str | torch.device = "auto", *, channels_last: bool = False
) -> torch.device:
    """Move ``net.model`` to ``device`` (once: a no-op when already there) in eval mode and
    return the resolved device. Callers running several shards in one worker call this once and
    pass ``restore_device=False`` to ``extract_unit_stats`` so weights are not copied back and
    forth per shard."""
    dev = resolve_device(device)
    param = next(net.model.parameters(), None)
    if param is None or param.device != dev:
        net.model.to(dev)
    if channels_last:
        net.model.to(memory_format=torch.channels_last)
    net.model.eval()
    return dev


def autocast_dtype(device: str | torch.device) -> torch.dtype:
    """The reduced precision used for ``dtype="auto"``: float16 on CUDA, bfloat16 elsewhere
    (CPU autocast supports bfloat16; float16 convolutions there are slow or missing)."""
    return torch.float16 if torch.device(device).type == "cuda" else torch.bfloat16


@dataclass
class LabelSpec:
    """How IoU counts against label maps are taken during extraction (see ``BinnedIoU``).

    ``n_labels``: label numbers 0..n_labels-1 (0 = unlabeled); ``label_category`` [n_labels]
    int (-1 = none), needed for ``denominator="category"``; ``size``: comparison resolution
    (default: the label maps' own size); ``resize_labels``: resize maps of another size (nearest)
    instead of refusing them; ``level``: the quantile the final threshold is read at
    (0.995 = top 0.5 %); ``mantissa_bits``/``window_bins``: bin resolution and window width
    (7 bits = 128 bins per octave, 256 bins = one octave each side of the first estimate);
    ``below_fraction``: share of the window below the estimate (0.5 = one octave). The counting
    cost is proportional to the pixels above the window's lower edge (on the demo net's conv5,
    one octave below the top-0.5 % level holds ~8x the final mask area; a quarter octave ~3.5x),
    so a smaller fraction is faster but fails (``exact`` False) if the final threshold drops
    below it; on demo-world shards of 25 images the first-batch estimate was within 0.66x-1.6x
    of the final one.
    ``window_thresholds`` {layer: [U]}: center the windows on these (e.g. broadcast to every
    shard of a run) instead of each shard's first-batch estimate."""

    n_labels: int
    label_category: torch.Tensor | None = None
    denominator: str = "plain"
    size: tuple[int, int] | None = None
    resize_labels: bool = False
    level: float = DEFAULT_QUANTILE
    mantissa_bits: int = 7
    window_bins: int = 256
    below_fraction: float = 0.5
    window_thresholds: dict[str, torch.Tensor] | None = None

    def make(self, layer: str, num_units: int, device) -> BinnedIoU:
        acc = BinnedIoU(
            num_units,
            self.n_labels,
            mantissa_bits=self.mantissa_bits,
            window_bins=self.window_bins,
            denominator=self.denominator,
            label_category=self.label_category,
            size=self.size,
            resize_labels=self.resize_labels,
            device=device,
        )
        if self.window_thresholds and layer in self.window_thresholds:
            acc.set_window_around(self.window_thresholds[layer], self.below_fraction)
        return acc


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
    values per unit), ``n_images`` and the activation map shape ``map_shape`` (H, W).
    Optionally ``top.maps`` / ``controls.maps`` (float16 activation maps of the kept images) and
    ``iou`` (``BinnedIoU`` counts, read at ``threshold(iou_level)`` by ``iou_counts()``)."""

    layer: str
    module_path: str
    num_units: int
    map_shape: tuple[int, int]
    top: RunningTopK
    controls: RunningTopK
    quantile: RunningQuantile
    n_images: int = 0
    iou: BinnedIoU | None = None
    iou_level: float = DEFAULT_QUANTILE
    _below_fraction: float = 0.5  # not saved: used only to place the window before counting

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
        keep_maps: bool = False,
        labels: LabelSpec | None = None,
    ) -> UnitStats:
        """Empty stats; ``keep_maps`` stores the kept images' maps, ``labels`` adds IoU counts."""
        if labels is not None and labels.mantissa_bits <= quantile_bits:
            # The sketch's thresholds are bin midpoints = edges of (quantile_bits + 1)-bit bins;
            # coarser IoU bins would turn the exact read-off into a bounded estimate.
            raise ValueError("LabelSpec.mantissa_bits must exceed quantile_bits for exact IoU")
        return cls(
            layer=layer,
            module_path=module_path,
            num_units=num_units,
            map_shape=tuple(map_shape),
            top=RunningTopK(top_k, num_units, largest=True, keep_maps=keep_maps).to(device),
            controls=RunningTopK(controls, num_units, largest=False, keep_maps=keep_maps).to(
                device
            ),
            quantile=RunningQuantile(num_units, mantissa_bits=quantile_bits, device=device),
            iou=None if labels is None else labels.make(layer, num_units, device),
            iou_level=DEFAULT_QUANTILE if labels is None else float(labels.level),
            _below_fraction=0.5 if labels is None else float(labels.below_fraction),
        )

    def add(
        self,
        activations: torch.Tensor,
        image_ids: torch.Tensor,
        label_maps: torch.Tensor | None = None,
        has_labels: torch.Tensor | None = None,
    ) -> None:
        """Add a batch of activations [N, U, H, W] (or [N, U]) for images ``image_ids`` [N];
        ``label_maps`` [N, M, H', W'] (or None) feed the IoU counts for the images where
        ``has_labels`` [N] is true (all when None). Images without maps still count for top-K,
        controls and the quantile sketch."""
        scores, positions = spatial_max(activations)
        ids = torch.as_tensor(image_ids, dtype=torch.int64, device=scores.device)
        maps = None
        if self.top.keep_maps:
            maps = (
                activations
                if activations.dim() == 4
                else activations.reshape(*activations.shape[:2], *self.map_shape)
            )
        self.top.add(scores, ids, positions, maps)
        self.controls.add(scores, ids, positions, maps)
        self.quantile.add(activations)
        self.n_images += int(activations.shape[0])
        if self.iou is not None and label_maps is not None and activations.shape[0]:
            if not self.iou.has_window:
                # First labeled batch: center each unit's bins on the sketch's current estimate
                # (it already includes this batch). The final threshold must land in the window
                # for an exact read-off; iou_counts().exact says per unit whether it did.
                self.iou.set_window_around(
                    self.quantile.quantile(self.iou_level), self._below_fraction
                )
            self.iou.add(activations, label_maps, has_labels)

    def iou_counts(self, level: float | None = None) -> IoUCounts:
        """Intersection / areas / IoU per unit x label at ``threshold(level)`` (default
        ``iou_level``); exact (``.exact``) when the threshold fell inside the unit's window."""
        if self.iou is None:
            raise ValueError(f"layer {self.layer!r} was extracted without label maps")
        return self.iou.counts_at(self.threshold(self.iou_level if level is None else level))

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
        if (self.iou is None) != (other.iou is None):
            raise ValueError("cannot merge stats with and without IoU counts")
        if self.iou is not None:
            self.iou.merge(other.iou)
        self.n_images += other.n_images
        return self

    def threshold(self, q: float = DEFAULT_QUANTILE) -> torch.Tensor:
        """Per-unit activation quantile (default: NetDissect's top-0.5% threshold), float32 [U]."""
        return self.quantile.quantile(q)

    def to(self, device) -> UnitStats:
        self.top.to(device)
        self.controls.to(device)
        self.quantile.to(device)
        if self.iou is not None:
            self.iou.to(device)
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
            "iou": None if self.iou is None else self.iou.state_dict(),
            "iou_level": self.iou_level,
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
            iou=None if state.get("iou") is None else BinnedIoU.from_state_dict(state["iou"]),
            iou_level=float(state.get("iou_level", DEFAULT_QUANTILE)),
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


def _autocast(device: torch.device, dtype: torch.dtype | str | None):
    if dtype == "auto":
        dtype = autocast_dtype(device)
    if dtype is None or dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


Batch = tuple  # (ids, images) | (ids, images, label_maps | None) | (+ has_labels [N] bool)


def _unpack(batch: Batch):
    """(ids, images, label_maps or None, has_labels or None) of any accepted batch tuple."""
    if len(batch) not in (2, 3, 4):
        raise ValueError(
            "a batch is (ids, images), (ids, images, label_maps) or "
            f"(ids, images, label_maps, has_labels); got {len(batch)} items"
        )
    ids, images, *rest = batch
    rest += [None] * (2 - len(rest))
    return ids, images, rest[0], rest[1]


def extract_unit_stats(
    net: LoadedNetwork,
    layers: Sequence[str],
    batches: Iterable[Batch],
    *,
    top_k: int = 60,
    controls: int = 20,
    quantile_bits: int = 6,
    device: str | torch.device = "auto",
    dtype: torch.dtype | str | None = None,
    channels_last: bool = False,
    progress: Callable[[int, int | None], None] | None = None,
    total: int | None = None,
    keep_maps: bool = False,
    labels: LabelSpec | None = None,
    restore_device: bool = True,
) -> dict[str, UnitStats]:
    """Run ``net`` over ``batches`` of ``(image_ids int64 [n], images float [n, 3, S, S])``
    (already preprocessed, e.g. from ``dissect.images.iter_image_batches``) and return
    ``{layer_alias: UnitStats}`` (on the CPU) for the chosen layers (aliases or module paths).

    One forward pass per batch serves every layer (forward hooks); every statistic is updated on
    the model's device. ``device='auto'`` uses CUDA when available; ``dtype`` (torch.float16 /
    torch.bfloat16, or "auto" = float16 on CUDA, bfloat16 on CPU) turns on autocast for the
    forward pass (statistics stay float32); ``channels_last`` sets that memory format.
    ``progress(images_done, total)`` is called after each batch (``total`` as given).
    A layer gets empty stats (``n_images == 0``) when no batch arrives, so an empty shard
    still merges.

    One-pass options: ``keep_maps`` stores each unit's top-K and control images' activation maps
    (float16) in ``top.maps`` / ``controls.maps``; ``labels`` (a ``LabelSpec``) adds IoU counts
    from batches carrying label maps, ``(ids, images, label_maps [n, M, H, W] int | None)`` or
    ``(ids, images, label_maps, has_labels [n] bool)`` (e.g. ``dissect.engine.batches``); read
    them with ``stats[layer].iou_counts()``. ``restore_device=False`` leaves the model on its
    device (see ``place_model``).
    """
    dev = place_model(net, device, channels_last=channels_last)
    resolved = resolve_layers(net, layers)
    model = net.model
    stats: dict[str, UnitStats] = {}
    # The batch being forwarded: (ids, label maps, has_labels), all on the device.
    current: list = [None, None, None]

    def on_output(layer: ResolvedLayer, output: torch.Tensor) -> None:
        if layer.alias not in stats:
            shape = {2: (1, 1), 3: (1, output.shape[-1])}.get(output.dim(), output.shape[2:4])
            shape = tuple(int(v) for v in shape)
            stats[layer.alias] = UnitStats.empty(
                layer.alias, layer.path, int(output.shape[1]), shape,
                top_k=top_k, controls=controls, quantile_bits=quantile_bits, device=dev,
                keep_maps=keep_maps, labels=labels,
            )  # fmt: skip
        # Reduced at once (a later in-place op may overwrite the tensor); float32 statistics.
        stats[layer.alias].add(output.detach().float(), *current)

    done = 0
    try:
        with torch.inference_mode(), forward_hooks(resolved, on_output):
            for batch in batches:
                image_ids, images, label_maps, has_labels = _unpack(batch)
                ids = torch.as_tensor(image_ids, dtype=torch.int64)
                if ids.numel() == 0:
                    continue
                x = images.to(dev, non_blocking=True)
                if channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                if label_maps is not None and labels is not None:
                    label_maps = torch.as_tensor(label_maps).to(dev, non_blocking=True)
                    if has_labels is not None:
                        has_labels = torch.as_tensor(has_labels, dtype=torch.bool).to(dev)
                else:
                    label_maps = has_labels = None
                current[:] = [ids.to(dev), label_maps, has_labels]
                with _autocast(dev, dtype):
                    model(x)
                done += int(ids.numel())
                if progress is not None:
                    progress(done, total)
        missing = [layer for layer in resolved if layer.alias not in stats]
        if missing:
            # No images at all: one dummy pass with zero-length slices gives each layer its shape.
            current[:] = [torch.empty(0, dtype=torch.int64, device=dev), None, None]
            with (
                torch.inference_mode(),
                forward_hooks(missing, lambda lay, out: on_output(lay, out[:0])),
            ):
                model(torch.zeros(1, 3, net.input_size, net.input_size, device=dev))
    finally:
        if restore_device:
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
