"""Network Dissection's unit-concept IoU (Bau et al., CVPR 2017), streamed with bounded memory.

For each unit: threshold its activation maps at the unit's top quantile over the dataset (0.5% by
default), upsample the maps bilinearly to the label-map size, and pool over the whole dataset the
intersection and union of the thresholded mask with every ground-truth label. A unit's automatic
label is its best-IoU label.

Two small pieces, each with ``add(batch)`` and ``merge(other)`` so shards can be combined:

- ``RunningTopValues`` keeps the k largest activations per unit: the exact top-quantile threshold
  when k is derived from the dataset size (``top_k_for_quantile``).
- ``IoUAccumulator`` keeps, per unit x label, the intersection count, plus per-unit and per-label
  areas: memory is O(units x labels) whatever the number of images.

Both need the threshold before counting (two passes). For one pass, where the threshold is known
only at the end, see ``dissect.engine.iou.BinnedIoU`` (exact at the engine's sketch thresholds)
and ``dissect.engine.extract_unit_stats(..., labels=LabelSpec(...))``.
"""

import math
from dataclasses import dataclass

import torch

# The one spelling across the code: a unit's threshold is its activations' ``quantile`` level
# (0.995 = the top 0.5 %, NetDissect's), as the run parameter ``quantile``.
DEFAULT_QUANTILE = 0.995


def top_k_for_quantile(n_values: int, quantile: float = DEFAULT_QUANTILE) -> int:
    """How many of ``n_values`` activations per unit lie at or above the ``quantile`` level."""
    return max(1, math.ceil(round((1.0 - quantile) * n_values, 9)))


class RunningTopValues:
    """The ``k`` largest values per unit seen so far; ``threshold()`` is the k-th largest."""

    def __init__(self, n_units: int, k: int):
        self.k = k
        self.values = torch.full((n_units, 0), float("-inf"))

    def add(self, activations: torch.Tensor) -> None:
        """activations: (batch, units, h, w) or (batch, units)."""
        flat = activations.detach().float().transpose(0, 1).reshape(activations.shape[1], -1)
        self._keep(torch.cat([self.values, flat.cpu()], dim=1))

    def merge(self, other: "RunningTopValues") -> None:
        self._keep(torch.cat([self.values, other.values], dim=1))

    def _keep(self, values: torch.Tensor) -> None:
        k = min(self.k, values.shape[1])
        self.values = values.topk(k, dim=1, sorted=False).values

    def threshold(self) -> torch.Tensor:
        """(units,) the k-th largest value of each unit (the smallest kept one)."""
        if self.values.shape[1] < self.k:
            raise ValueError(
                f"only {self.values.shape[1]} values per unit seen, fewer than k={self.k}: "
                "k must come from the number of values actually added"
            )
        return self.values.min(dim=1).values


def unit_masks(
    activations: torch.Tensor, thresholds: torch.Tensor, size: tuple[int, int]
) -> torch.Tensor:
    """(batch, units, h, w) activations -> (batch, units, H, W) bool masks: bilinear upsampling to
    ``size`` then ``> threshold`` per unit (``dissect.engine.upsample``: the values the one-pass
    counts use, equal to ``F.interpolate(..., align_corners=False)`` up to float32 rounding)."""
    from dissect.engine.upsample import upsample  # the engine imports this module

    up = upsample(activations, size)
    return up > thresholds.view(1, -1, 1, 1).to(up)


@dataclass
class IoUAccumulator:
    """Dataset-pooled intersection and union counts of unit masks with labels.

    intersection[u, l] counts pixels in unit u's mask carrying label l; label 0 means "no label" and
    is counted but never reported as a concept.
    """

    n_units: int
    n_labels: int

    def __post_init__(self):
        self.intersection = torch.zeros(self.n_units, self.n_labels, dtype=torch.int64)
        self.unit_area = torch.zeros(self.n_units, dtype=torch.int64)
        self.label_area = torch.zeros(self.n_labels, dtype=torch.int64)

    def add(self, masks: torch.Tensor, label_maps: torch.Tensor) -> None:
        """masks: (batch, units, H, W) bool; label_maps: (batch, maps, H, W) integer label numbers.

        Each label appears in at most one of the maps of a pixel (label numbers are global across
        categories), so a pixel counts once per label.
        """
        if masks.shape[0] != label_maps.shape[0] or masks.shape[2:] != label_maps.shape[2:]:
            raise ValueError(
                f"masks {tuple(masks.shape)} and label maps {tuple(label_maps.shape)} "
                "must share batch size and H, W"
            )
        label_maps = label_maps.long()
        self.unit_area += masks.sum(dim=(0, 2, 3)).cpu()
        self.label_area += torch.bincount(label_maps.flatten(), minlength=self.n_labels).cpu()
        # Only mask pixels matter, and masks are sparse (top 0.5%): gather their labels and count
        # (unit, label) pairs with one bincount.
        b, u, y, x = masks.nonzero(as_tuple=True)
        if b.numel() == 0:
            return
        labels = label_maps[b, :, y, x]  # (pixels, maps)
        pairs = u.unsqueeze(1) * self.n_labels + labels
        counts = torch.bincount(pairs.flatten(), minlength=self.n_units * self.n_labels)
        self.intersection += counts.view(self.n_units, self.n_labels).cpu()

    def add_activations(
        self, activations: torch.Tensor, thresholds: torch.Tensor, label_maps: torch.Tensor
    ) -> None:
        """Same counts as ``add(unit_masks(activations, thresholds, size), label_maps)``, faster.

        A bilinearly upsampled value is a convex combination of its source cells, so a map whose
        maximum is <= the threshold upsamples to an empty mask. With a top-0.5% threshold most
        (image, unit) maps are like that: only the others are upsampled.
        """
        batch, n_units = activations.shape[:2]
        size = tuple(label_maps.shape[2:])
        if label_maps.shape[0] != batch:
            raise ValueError(
                f"activations {tuple(activations.shape)} and label maps "
                f"{tuple(label_maps.shape)} must share the batch size"
            )
        label_maps = label_maps.long()
        self.label_area += torch.bincount(label_maps.flatten(), minlength=self.n_labels).cpu()
        thresholds = thresholds.to(activations.device, torch.float32)
        peak = activations.float().flatten(2).amax(dim=2)
        hot_b, hot_u = (peak > thresholds.view(1, -1)).nonzero(as_tuple=True)
        if hot_b.numel() == 0:
            return
        from dissect.engine.upsample import upsample  # the engine imports this module

        up = upsample(activations[hot_b, hot_u].float(), size)  # (hot, H, W)
        p, y, x = (up > thresholds[hot_u].view(-1, 1, 1)).nonzero(as_tuple=True)
        b, u = hot_b[p], hot_u[p]
        self.unit_area += torch.bincount(u, minlength=self.n_units).cpu()
        pairs = u.unsqueeze(1) * self.n_labels + label_maps[b, :, y, x]
        counts = torch.bincount(pairs.flatten(), minlength=self.n_units * self.n_labels)
        self.intersection += counts.view(self.n_units, self.n_labels).cpu()

    def merge(self, other: "IoUAccumulator") -> None:
        self.intersection += other.intersection
        self.unit_area += other.unit_area
        self.label_area += other.label_area

    def iou(self) -> torch.Tensor:
        """(units, labels) float IoU; column 0 ("no label") is set to 0."""
        union = self.unit_area.unsqueeze(1) + self.label_area.unsqueeze(0) - self.intersection
        result = self.intersection.double() / union.clamp(min=1).double()
        result[:, 0] = 0.0
        return result.float()


def best_labels(iou: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each unit's automatic label: (label number, IoU) of its best-IoU label, ties to the lower
    number."""
    values, labels = iou.max(dim=1)
    return labels, values
