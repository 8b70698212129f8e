"""Threshold-deferred unit x label IoU counts (Network Dissection) for a one-pass dissection.

NetDissect thresholds each unit's upsampled activation maps at the unit's top-quantile level
(top 0.5 %), which is known only after every image was seen. ``BinnedIoU`` counts, while the
images stream by, every upsampled activation value into a per-unit *bin* and accumulates per
unit x label x bin the intersection count and per unit x bin the unit area (the label area does
not depend on the threshold). At the end, the count "activation > t" is the sum of the bins above
t, for any per-unit threshold t.

**Bins.** A value's bin is read from its float32 bit pattern: the bits are mapped to an ordered
integer ``o(x)`` (monotone in x; +0 and -0 both 0) and ``key(x) = floor((o(x) - 1) / 2**s)`` with
``s = 23 - mantissa_bits``, so bin k holds the values whose o lies in ``(k * 2**s, (k+1) * 2**s]``:
``2**mantissa_bits`` bins per octave (relative width ``2**-mantissa_bits``). The bins depend on no
data, so shards bin identically and merging is adding integer counts: exact, associative and
commutative. Each unit keeps only a *window* of bins ``[lo, hi]`` around its expected threshold
(values below ``lo``'s bin are dropped: they can never be above a threshold inside the window;
values above ``hi`` share one overflow column). Memory is
``units x (labels + 1 + categories) x (bins + 1) x 8`` bytes, independent of the number of images
(e.g. 128 units x 90 labels x 257 bins = 24 MB).

**Upsampling.** ``dissect.engine.upsample``: bilinear, ``align_corners=False``, equal to
``F.interpolate`` up to float32 rounding (<= 1e-6 relative). Only the output blocks whose source
cells reach above the window's lower edge are computed (``hot_pixels``), with values
bit-identical to the dense ``upsample`` that the two-pass ``IoUAccumulator`` thresholds.

**Error bound.** For a threshold t whose o-value is a multiple of ``2**s`` (a bin *edge*) and
inside the unit's window (``lo * 2**s <= o(t) <= (hi + 1) * 2**s``), the counts are *exact*: the
same integers as thresholding the same upsampled maps at t directly. Every threshold returned by
``RunningQuantile`` with ``mantissa_bits = b`` (a bin midpoint, or 0) is an edge of the
``b + 1``-bit bins, so with the default ``RunningQuantile(mantissa_bits=6)`` and
``BinnedIoU(mantissa_bits=7)`` the engine's own thresholds give exact IoU (``|dIoU| = 0`` up to
float rounding of the final division). Any other t lies strictly inside one bin: that bin's pixels
are the only unknown, and ``IoUCounts`` carries guaranteed lower/upper bounds on every count and
IoU (``iou_low <= true IoU <= iou_high``) next to the linear-interpolated estimate; the half-width
is reported, not assumed. A threshold outside the window (rare: the first batch's estimate was off
by more than the window) gives bounds only and ``exact[u] = False``.

**Denominators.** ``"plain"``: union = unit area + label area - intersection, pooled over all
labeled images (as ``dissect.netdissect.IoUAccumulator``). ``"category"``: the unit area is
counted only over images where some pixel carries a label of the label's category (the original
NetDissect's per-category union, so a unit is not penalized for firing on images where that kind of
annotation does not exist). NetDissect-Lite's ``tally_units_cat`` conditions on the category
appearing *under the unit's mask* in the image instead; that variant is not implemented.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .upsample import hot_blocks

__all__ = [
    "BinnedIoU",
    "IoUCounts",
    "edge_values",
    "ordered_bits",
    "value_keys",
    "IOU_FORMAT_VERSION",
]

IOU_FORMAT_VERSION = 1
DENOMINATORS = ("plain", "category")
# Upsampled pixels per chunk of (image, unit) maps: bounds the memory when every block is hot
# (64 MB of float32); usually only a few percent are evaluated (``hot_pixels``).
DEFAULT_PIXEL_BUDGET = 1 << 24


def ordered_bits(x: torch.Tensor) -> torch.Tensor:
    """float32 -> int32 that orders like the values (+0 and -0 -> 0; NaN must be removed first)."""
    bits = x.to(torch.float32).contiguous().view(torch.int32)
    # Sign-magnitude -> two's complement order; no overflow: |bits & 0x7FFFFFFF| < 2**31.
    return torch.where(bits < 0, -(bits & 0x7FFFFFFF), bits)


def value_keys(x: torch.Tensor, mantissa_bits: int) -> torch.Tensor:
    """Bin key (int64) of each value: bin k holds o(x) in (k * 2**s, (k+1) * 2**s],
    s = 23 - bits. NaN goes below every bin (it never passes a ``>`` threshold)."""
    x = torch.nan_to_num(x.to(torch.float32), nan=float("-inf"))
    # int32 arithmetic shift = floor division by 2**s; o - 1 >= -2**31, so no overflow.
    return ((ordered_bits(x) - 1) >> (23 - mantissa_bits)).to(torch.int64)


def edge_values(keys: torch.Tensor, mantissa_bits: int) -> torch.Tensor:
    """The float32 value at the lower edge of each bin key: ``x > edge_values(k)`` exactly when
    ``value_keys(x) >= k`` (the edge is itself a float32, and o() is strictly monotone)."""
    o = keys.to(torch.int64) * (1 << (23 - mantissa_bits))
    o = o.clamp(-0x7F800000, 0x7F800000)  # beyond +-inf there is no float: saturate there
    # Back from the ordered integer to the sign-magnitude bit pattern, as int32.
    bits = torch.where(o < 0, (-o) - 2**31, o)
    return bits.to(torch.int32).view(torch.float32)


@dataclass
class IoUCounts:
    """Counts and IoU at given thresholds, per unit x label (``[U, L]``, label 0 reported as 0).

    ``intersection`` / ``unit_area`` are the interpolated estimates (equal to the ``_low`` /
    ``_high`` bounds when ``exact[u]``); ``unit_area`` is the area used in the union (already
    category-conditioned for ``denominator="category"``, hence per label); ``label_area`` [L].
    Write ``rows()`` as CSV to keep the numbers behind every score."""

    thresholds: torch.Tensor  # [U] float32
    intersection: torch.Tensor  # [U, L] float64
    intersection_low: torch.Tensor  # [U, L] int64
    intersection_high: torch.Tensor
    unit_area: torch.Tensor  # [U, L] float64
    unit_area_low: torch.Tensor  # [U, L] int64
    unit_area_high: torch.Tensor
    label_area: torch.Tensor  # [L] int64
    iou: torch.Tensor  # [U, L] float32
    iou_low: torch.Tensor
    iou_high: torch.Tensor
    exact: torch.Tensor  # [U] bool
    denominator: str

    @property
    def max_error(self) -> float:
        """Largest possible |IoU - true IoU| over all units and labels (0.0 when all exact)."""
        spread = torch.maximum(self.iou_high - self.iou, self.iou - self.iou_low)
        return float(spread.max()) if spread.numel() else 0.0

    def rows(self, label_names: list[str] | None = None):
        """Yield one dict per (unit, label) with a non-zero intersection: the CSV rows."""
        units, labels = torch.nonzero(self.intersection_high > 0, as_tuple=True)
        for u, lab in zip(units.tolist(), labels.tolist(), strict=True):
            if lab == 0:
                continue
            yield {
                "unit": u,
                "label": label_names[lab] if label_names else lab,
                "threshold": float(self.thresholds[u]),
                "intersection": float(self.intersection[u, lab]),
                "unit_area": float(self.unit_area[u, lab]),
                "label_area": int(self.label_area[lab]),
                "iou": float(self.iou[u, lab]),
                "iou_low": float(self.iou_low[u, lab]),
                "iou_high": float(self.iou_high[u, lab]),
                "exact": bool(self.exact[u]),
            }


def _iou(inter, area, label_area):
    union = (area + label_area.unsqueeze(0) - inter).clamp(min=1)
    return inter / union


class BinnedIoU:
    """Per unit x label x activation bin intersection counts, per unit x bin areas (see module).

    ``add(activations [N, U, h, w], label_maps [N, M, H, W] int)`` upsamples each map bilinearly
    (``align_corners=False``, as NetDissect) to ``size`` (default: the first label maps' size) and
    counts; ``counts_at(thresholds [U])`` reads off intersections, areas and IoU. Label numbers are
    global across maps (each label in at most one map of a pixel); 0 = unlabeled, out-of-range
    numbers count as 0. ``label_category`` [L] (int, -1 = none) is needed for
    ``denominator="category"``. The window must be set (``set_window``/``set_window_around``)
    before the first ``add``; every tensor lives on ``device`` (move with ``to``).
    """

    def __init__(
        self,
        num_units: int,
        n_labels: int,
        *,
        mantissa_bits: int = 7,
        window_bins: int = 256,
        denominator: str = "plain",
        label_category: torch.Tensor | None = None,
        size: tuple[int, int] | None = None,
        resize_labels: bool = False,
        device: torch.device | str = "cpu",
    ) -> None:
        if denominator not in DENOMINATORS:
            raise ValueError(f"denominator must be one of {DENOMINATORS}, got {denominator!r}")
        if denominator == "category" and label_category is None:
            raise ValueError('denominator="category" needs label_category (category per label)')
        if not 1 <= mantissa_bits <= 16 or window_bins < 1:
            raise ValueError("mantissa_bits must be in 1..16 and window_bins >= 1")
        self.num_units, self.n_labels = int(num_units), int(n_labels)
        self.mantissa_bits, self.bins = int(mantissa_bits), int(window_bins)
        self.denominator = denominator
        self.size = None if size is None else (int(size[0]), int(size[1]))
        self.resize_labels = bool(resize_labels)
        self.label_category = (
            None if label_category is None else torch.as_tensor(label_category).long().to(device)
        )
        self.n_categories = (
            0 if self.label_category is None else int(self.label_category.max().clamp(min=-1)) + 1
        )
        self.n_images = 0  # images whose label maps were counted
        self.lo: torch.Tensor | None = None  # [U] int64 first key of the window
        self.hi: torch.Tensor | None = None  # [U] int64 last key (inclusive); > hi: overflow
        b, u = self.bins + 1, self.num_units
        self.intersection = torch.zeros(u, self.n_labels, b, dtype=torch.int64, device=device)
        self.unit_area = torch.zeros(u, b, dtype=torch.int64, device=device)
        self.unit_area_cat = torch.zeros(u, self.n_categories, b, dtype=torch.int64, device=device)
        self.label_area = torch.zeros(self.n_labels, dtype=torch.int64, device=device)

    # -- window -----------------------------------------------------------------------------
    @property
    def has_window(self) -> bool:
        return self.lo is not None

    @property
    def _lo_edge(self) -> torch.Tensor:
        """[U] float32 lower edge of each unit's window (values above it are counted)."""
        return edge_values(self.lo, self.mantissa_bits)

    def set_window(self, lo: torch.Tensor) -> None:
        """Set each unit's first bin key ``lo`` [U] (int64); the window is ``bins`` wide. Must
        happen before any count: shards merge exactly whatever their windows (see ``merge``)."""
        if self.n_images:
            raise ValueError("the window is fixed once counts exist")
        device = self.unit_area.device
        self.lo = torch.as_tensor(lo, dtype=torch.int64).to(device).reshape(self.num_units)
        self.hi = self.lo + (self.bins - 1)

    def window_around(self, thresholds: torch.Tensor, below_fraction: float = 0.5) -> torch.Tensor:
        """``lo`` keys placing each unit's expected threshold ``below_fraction`` of the way up its
        window: with 128 bins/octave and 256 bins, 1 octave below and 1 above by default. NaN
        (unit without values) is treated as 0."""
        t = torch.nan_to_num(torch.as_tensor(thresholds, dtype=torch.float32), nan=0.0)
        key = value_keys(t, self.mantissa_bits) + 1  # the edge at/above t
        return key - int(round(below_fraction * self.bins))

    def set_window_around(self, thresholds: torch.Tensor, below_fraction: float = 0.5) -> None:
        """``set_window(window_around(thresholds))``: e.g. the quantile sketch's estimate after
        the first batch, or thresholds broadcast to every shard of a run."""
        self.set_window(self.window_around(thresholds, below_fraction))

    # -- verbs ------------------------------------------------------------------------------
    def add(
        self,
        activations: torch.Tensor,
        label_maps: torch.Tensor,
        has_labels: torch.Tensor | None = None,
        *,
        pixel_budget: int = DEFAULT_PIXEL_BUDGET,
    ) -> None:
        """Count a batch: ``activations`` [N, U, h, w] (or [N, U]), ``label_maps`` [N, M, H, W]
        (or [N, H, W]) integer, ``has_labels`` [N] bool (images without maps are skipped).
        ``pixel_budget`` bounds the upsampled pixels evaluated at once (memory)."""
        if self.lo is None:
            raise ValueError("set the window (set_window / set_window_around) before add")
        device = self.unit_area.device
        acts = activations.detach()
        if acts.dim() == 2:  # vector layers: one cell per unit
            acts = acts[:, :, None, None]
        elif acts.dim() == 3:  # [N, U, L] sequences: one row of L cells
            acts = acts[:, :, None, :]
        maps = torch.as_tensor(label_maps)
        if maps.dim() == 3:
            maps = maps[:, None]
        if acts.shape[0] != maps.shape[0] or acts.shape[1] != self.num_units:
            raise ValueError(
                f"activations {tuple(acts.shape)} and label maps {tuple(maps.shape)} must share "
                f"the batch size and have {self.num_units} units"
            )
        keep = None if has_labels is None else torch.as_tensor(has_labels, dtype=torch.bool)
        if keep is not None and not bool(keep.all()):
            # (A boolean mask copies the whole batch's maps: only when some image lacks them.)
            acts, maps = acts[keep.to(acts.device)], maps[keep.to(maps.device)]
        if acts.shape[0] == 0:
            return
        maps = self._labels_at_size(maps.to(device))
        acts = acts.to(device=device, dtype=torch.float32)
        n, m = maps.shape[:2]
        hw = self.size[0] * self.size[1]
        self.label_area += torch.bincount(maps.reshape(-1), minlength=self.n_labels)
        # Per-category unit areas only serve the category denominator.
        category = self.denominator == "category"
        present = self._category_presence(maps) if category else None
        # Planes constant over every image of the batch (whole-image labels such as a scene,
        # stored as constant planes) add a pair's whole histogram to one label: no pixel work.
        flat = maps.view(n, m, hw)
        constant = (flat.amax(2) == flat.amin(2)).all(0)
        image_labels = maps[:, :, 0, 0][:, constant].long()  # [N, Mc] (one pixel per plane)
        # The other planes pixel-major, kept in their small dtype (uint8 for up to 255 labels):
        # one row gather gives a pixel's labels; they become count offsets only once gathered.
        varying = (~constant).nonzero()[:, 0]
        label_rows = maps.index_select(1, varying).permute(0, 2, 3, 1).reshape(n * hw, -1)
        # Bilinear upsampling is a convex combination of source cells, so a map whose peak lies
        # below the window's first bin upsamples to nothing countable: skip it. Pairs go unit by
        # unit, so the counts they touch stay close in memory (a unit's labels x bins block):
        # the scattered count below is ~4x faster than in image order.
        peak = acts.flatten(2).amax(2)
        hot_u, hot_n = (peak.t() > self._lo_edge.view(-1, 1)).nonzero(as_tuple=True)
        step = max(1, pixel_budget // hw)
        counts = self.intersection.view(-1)
        for start in range(0, hot_n.numel(), step):
            n_, u_ = hot_n[start : start + step], hot_u[start : start + step]
            cell = self._add_pairs(
                acts[n_, u_], label_rows, image_labels, n_, u_,
                None if present is None else present[n_],
            )  # fmt: skip
            if cell is not None:
                # Added in place: a bincount would need a state-sized temporary per batch, and
                # fresh large buffers cost page faults (they dominated the profile).
                ones = torch.ones(1, dtype=counts.dtype, device=device).expand(cell.numel())
                counts.index_add_(0, cell, ones)
        self.n_images += int(acts.shape[0])

    def _labels_at_size(self, maps: torch.Tensor) -> torch.Tensor:
        """The label maps at the comparison size, in a small integer dtype (counting gathers
        them), numbers outside the label table set to 0 (unlabeled)."""
        if maps.dtype not in (torch.uint8, torch.int16, torch.int32, torch.int64):
            maps = maps.long()
        if self.size is None:
            self.size = (int(maps.shape[2]), int(maps.shape[3]))
        if tuple(maps.shape[2:]) != self.size:
            if not self.resize_labels:
                raise ValueError(
                    f"label maps are {tuple(maps.shape[2:])}, expected {self.size}; pass "
                    "resize_labels=True to resize them (nearest)"
                )
            dtype = maps.dtype
            maps = F.interpolate(maps.double(), size=self.size, mode="nearest").to(dtype)
        if maps.numel() and (int(maps.min()) < 0 or int(maps.max()) >= self.n_labels):
            # A pixel value missing from the label table counts as unlabeled, not as a label.
            maps = torch.where((maps >= 0) & (maps < self.n_labels), maps, torch.zeros_like(maps))
        return maps.contiguous()

    def _category_presence(self, maps: torch.Tensor) -> torch.Tensor:
        """[N, C] float: 1 where some pixel of the image carries a label of category c."""
        n = maps.shape[0]
        labels = torch.zeros(n, self.n_labels, dtype=torch.bool, device=maps.device)
        labels.scatter_(1, maps.reshape(n, -1).long(), True)
        labels[:, 0] = False
        cat = self.label_category
        onehot = torch.zeros(self.n_labels, self.n_categories, device=maps.device)
        valid = cat >= 0
        onehot[valid.nonzero()[:, 0], cat[valid]] = 1.0
        return (labels.float() @ onehot) > 0

    def _add_pairs(self, maps_hw, label_rows, image_labels, images, units, present):
        """Count (image, unit) pairs: ``maps_hw`` [P, h, w]; ``label_rows`` [N * H * W, Mp] the
        batch's per-pixel labels (pixel-major); ``image_labels`` [N, Mc] its whole-image labels;
        the pairs' ``images`` [P] and ``units`` [P]; ``present`` [P, C] or None. Adds the areas
        and returns the flat intersection cells to count (or None)."""
        b1 = self.bins + 1
        hw = self.size[0] * self.size[1]
        # Only the upsampled pixels inside or above the window (``x > edge(lo)`` is exactly
        # ``key(x) >= lo``); most lie below it and are never computed (``hot_pixels``).
        edge = self._lo_edge[units]
        hot = hot_blocks(maps_hw, edge, self.size)
        if hot.value.numel() == 0:
            return None
        # Index arithmetic in int32 where it fits (several times faster than mixing in int64).
        small = max(self.intersection.numel(), units.numel() * b1, label_rows.shape[0]) < 2**31
        index_dtype = torch.int32 if small else torch.int64
        # Everything a pixel needs from its block in one gather: its pair's row in the areas,
        # its unit's first key, where its unit's counts start, where the block's labels start.
        pair = hot.block_map
        unit = units.index_select(0, pair)
        blocks = torch.stack(
            (
                pair * b1,
                self.lo.index_select(0, unit),
                unit * (self.n_labels * b1),
                images.index_select(0, pair) * hw + hot.block_origin,
            ),
            dim=1,
        ).to(index_dtype)
        per = blocks.index_select(0, hot.block)
        # Column in the unit's window; keys above it share the overflow column ``bins``.
        col = self._keys(hot.value, edge).to(index_dtype).sub_(per[:, 1]).clamp_(max=self.bins)
        hist = torch.bincount(per[:, 0] + col, minlength=units.numel() * b1).view(-1, b1)
        self.unit_area.index_add_(0, units, hist)
        if present is not None:
            self.unit_area_cat.index_add_(0, units, hist[:, None, :] * present[:, :, None])
        if image_labels.shape[1]:
            rows = self.intersection.view(-1, b1)
            for labels in (units.view(-1, 1) * self.n_labels + image_labels[images]).unbind(1):
                rows.index_add_(0, labels, hist)
        if label_rows.shape[1] == 0:
            return None
        row = hot.offset.to(index_dtype).add_(per[:, 3])
        labels = label_rows.index_select(0, row).to(index_dtype).mul_(b1)  # label * (bins + 1)
        return labels.add_((per[:, 2] + col).unsqueeze(1)).view(-1)

    def _keys(self, value: torch.Tensor, edge: torch.Tensor) -> torch.Tensor:
        """``value_keys`` of the hot values (all above ``edge``, so never NaN). When every edge
        is >= 0 the values are positive, and a positive float's ordered bits are its raw bits:
        two integer ops instead of the general sign handling (same keys)."""
        if edge.numel() and bool((edge >= 0).all()):
            return (value.view(torch.int32) - 1) >> (23 - self.mantissa_bits)
        return value_keys(value, self.mantissa_bits)

    def merge(self, other: BinnedIoU) -> BinnedIoU:
        """Add ``other``'s counts (same units, labels, bins, size, denominator); returns self.

        Windows may differ: both are first narrowed to their intersection per unit
        (``[max lo, min hi]``; bins below are dropped, bins above go to the overflow column), which
        is what a single pass with that window would have counted, so merging stays exact,
        associative and commutative."""
        same = ("num_units", "n_labels", "mantissa_bits", "bins", "denominator", "n_categories")
        if any(getattr(self, a) != getattr(other, a) for a in same):
            raise ValueError("cannot merge BinnedIoU with different settings")
        if other.n_images == 0:
            return self
        if self.n_images == 0 and self.lo is None:
            self.lo, self.hi = other.lo.clone(), other.hi.clone()
        if self.size is not None and other.size is not None and self.size != other.size:
            raise ValueError(f"cannot merge IoU counts at size {other.size} into {self.size}")
        self.size = self.size or other.size
        device = self.unit_area.device
        lo = torch.maximum(self.lo, other.lo.to(device))
        hi = torch.minimum(self.hi, other.hi.to(device))
        mine = self._narrowed(lo, hi, self.lo, self.hi, self)
        theirs = self._narrowed(lo, hi, other.lo.to(device), other.hi.to(device), other)
        self.intersection = mine[0] + theirs[0]
        self.unit_area = mine[1] + theirs[1]
        self.unit_area_cat = mine[2] + theirs[2]
        self.label_area = self.label_area + other.label_area.to(device)
        self.lo, self.hi = lo, hi
        self.n_images += other.n_images
        return self

    def _narrowed(self, lo, hi, old_lo, old_hi, src: BinnedIoU):
        """``src``'s binned tensors re-expressed on the window [lo, hi] (lo >= old_lo, hi <= old_hi)."""
        device = self.unit_area.device
        j = torch.arange(self.bins, device=device).view(1, -1)
        old_keys = old_lo.view(-1, 1) + j  # key of each old column
        src_col = (j + (lo - old_lo).view(-1, 1)).clamp(max=self.bins - 1)
        valid = (lo.view(-1, 1) + j) <= hi.view(-1, 1)
        over = (old_keys > hi.view(-1, 1)) & (old_keys <= old_hi.view(-1, 1))
        out = []
        for t in (src.intersection, src.unit_area.unsqueeze(1), src.unit_area_cat):
            t = t.to(device)
            body = t[..., : self.bins]
            shape = (t.shape[0], t.shape[1], self.bins)
            moved = torch.gather(body, 2, src_col.unsqueeze(1).expand(shape)) * valid.unsqueeze(1)
            overflow = t[..., self.bins] + (body * over.unsqueeze(1)).sum(-1)
            out.append(torch.cat([moved, overflow.unsqueeze(-1)], dim=-1))
        out[1] = out[1].squeeze(1)
        return out

    # -- read-off ---------------------------------------------------------------------------
    def _count_above(self, binned: torch.Tensor, key: torch.Tensor, cap: torch.Tensor):
        """Bounds on #(values with key >= key[u]) from ``binned`` [U, X, B+1]: (low, high)."""
        tail = binned.flip(-1).cumsum(-1).flip(-1)  # tail[..., c] = sum of columns >= c
        tail = torch.cat([tail, torch.zeros_like(tail[..., :1])], dim=-1)
        col = key - self.lo
        beyond = key > self.hi + 1  # inside the overflow column: mixed with lower keys
        low_col = torch.where(beyond, self.bins + 1, col.clamp(0, self.bins))
        high_col = col.clamp(0, self.bins)
        shape = binned.shape[:2]
        low = torch.gather(tail, 2, low_col.view(-1, 1, 1).expand(*shape, 1))[..., 0]
        high = torch.gather(tail, 2, high_col.view(-1, 1, 1).expand(*shape, 1))[..., 0]
        below = (key < self.lo).view(-1, 1)  # values under the window were not kept
        high = torch.where(below, torch.maximum(high, cap), high)
        return low, high

    def counts_at(self, thresholds: torch.Tensor) -> IoUCounts:
        """Intersection, unit area, label area and IoU at per-unit ``thresholds`` [U] (mask =
        upsampled activation > threshold), with guaranteed bounds; see the module docstring."""
        if self.lo is None:
            raise ValueError("no window set: nothing was counted")
        device = self.unit_area.device
        t = torch.nan_to_num(torch.as_tensor(thresholds, dtype=torch.float32), nan=float("inf"))
        t = t.to(device).reshape(self.num_units)
        o = ordered_bits(t)
        step = 1 << (23 - self.mantissa_bits)
        on_edge = torch.remainder(o, step) == 0
        k = value_keys(t, self.mantissa_bits)  # the bin holding t (t is its upper end on an edge)
        k_low = k + 1  # every key >= k + 1 is above t
        k_high = torch.where(on_edge, k + 1, k)  # keys >= k_high may be above t
        # Fraction of t's bin that lies above t (linear in o inside the bin).
        frac = ((k + 1) * step - o).double() / step
        frac = torch.where(on_edge, torch.zeros_like(frac), frac).view(-1, 1)
        pixels = self.size[0] * self.size[1] * self.n_images if self.size else 0
        label_area = self.label_area

        def bounds(binned, cap):
            low, _ = self._count_above(binned, k_low, cap)
            _, high = self._count_above(binned, k_high, cap)
            est = low.double() + frac * (high - low).double()
            return low, high, est

        i_low, i_high, i_est = bounds(self.intersection, label_area.view(1, -1))
        if self.denominator == "category":
            cap = torch.full((1, 1), pixels, dtype=torch.int64, device=device)
            a_low, a_high, a_est = bounds(self.unit_area_cat, cap)
            cat = self.label_category.clamp(min=0)
            a_low, a_high, a_est = (v[:, cat] for v in (a_low, a_high, a_est))
            no_cat = (self.label_category < 0).view(1, -1)
            i_low, i_high, i_est = (v.masked_fill(no_cat, 0) for v in (i_low, i_high, i_est))
        else:
            cap = torch.full((1, 1), pixels, dtype=torch.int64, device=device)
            a_low, a_high, a_est = bounds(self.unit_area.unsqueeze(1), cap)
            a_low, a_high, a_est = (v.expand(-1, self.n_labels) for v in (a_low, a_high, a_est))
        exact = (k_low == k_high) & (k_low >= self.lo) & (k_low <= self.hi + 1)
        la = label_area.double()
        iou = _iou(i_est, a_est, la)
        # IoU grows with the intersection and shrinks with the unit area; the union is never
        # below the label area.
        iou_low = i_low.double() / torch.maximum(a_high + la - i_low, la).clamp(min=1)
        iou_high = i_high.double() / torch.maximum(a_low + la - i_high, la).clamp(min=1)
        iou_high = torch.minimum(iou_high, torch.ones_like(iou_high))
        for v in (iou, iou_low, iou_high):
            v[:, 0] = 0.0
        return IoUCounts(
            thresholds=t.cpu(),
            intersection=i_est.cpu(),
            intersection_low=i_low.cpu(),
            intersection_high=i_high.cpu(),
            unit_area=a_est.cpu(),
            unit_area_low=a_low.cpu(),
            unit_area_high=a_high.cpu(),
            label_area=label_area.cpu(),
            iou=iou.float().cpu(),
            iou_low=iou_low.float().cpu(),
            iou_high=iou_high.float().cpu(),
            exact=exact.cpu(),
            denominator=self.denominator,
        )

    def iou(self, thresholds: torch.Tensor) -> torch.Tensor:
        """[U, L] float32 IoU at ``thresholds`` (column 0 = 0), as ``IoUAccumulator.iou()``."""
        return self.counts_at(thresholds).iou

    # -- device and files -------------------------------------------------------------------
    def to(self, device) -> BinnedIoU:
        for name in ("intersection", "unit_area", "unit_area_cat", "label_area", "lo", "hi"):
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, value.to(device))
        if self.label_category is not None:
            self.label_category = self.label_category.to(device)
        return self

    def state_dict(self) -> dict:
        """Plain tensors/ints on the CPU; counts as int32 when lossless (halves the file)."""

        def small(t: torch.Tensor) -> torch.Tensor:
            t = t.cpu()
            return t.to(torch.int32) if t.numel() == 0 or int(t.max()) < 2**31 else t

        def packed(t: torch.Tensor) -> dict:
            # Most (unit, label, bin) cells are zero: a label rarely meets a unit's top values.
            # Nonzero flat indices + values when that is smaller than the dense tensor.
            flat = t.cpu().reshape(-1)
            index = flat.nonzero()[:, 0]
            if flat.numel() < 2**31 and index.numel() * 2 < flat.numel():
                # int32 index + int32 value per nonzero vs int32 per cell
                values = small(flat[index])
                return {"shape": list(t.shape), "index": index.to(torch.int32), "values": values}
            return {"shape": list(t.shape), "dense": small(t)}

        return {
            "format": "crowddissect.binnediou",
            "version": IOU_FORMAT_VERSION,
            "num_units": self.num_units,
            "n_labels": self.n_labels,
            "mantissa_bits": self.mantissa_bits,
            "bins": self.bins,
            "denominator": self.denominator,
            "size": None if self.size is None else list(self.size),
            "resize_labels": self.resize_labels,
            "label_category": None if self.label_category is None else self.label_category.cpu(),
            "n_images": self.n_images,
            "lo": None if self.lo is None else self.lo.cpu(),
            "hi": None if self.hi is None else self.hi.cpu(),
            "intersection": packed(self.intersection),
            "unit_area": small(self.unit_area),
            "unit_area_cat": small(self.unit_area_cat),
            "label_area": self.label_area.cpu(),
        }

    @classmethod
    def from_state_dict(cls, state: dict, device: torch.device | str = "cpu") -> BinnedIoU:
        if state.get("format") != "crowddissect.binnediou":
            raise ValueError("not a BinnedIoU state")
        if int(state.get("version", 0)) > IOU_FORMAT_VERSION:
            raise ValueError(f"BinnedIoU format version {state['version']} is newer than this code")
        acc = cls(
            int(state["num_units"]),
            int(state["n_labels"]),
            mantissa_bits=int(state["mantissa_bits"]),
            window_bins=int(state["bins"]),
            denominator=state["denominator"],
            label_category=state["label_category"],
            size=None if state["size"] is None else tuple(state["size"]),
            resize_labels=bool(state["resize_labels"]),
            device=device,
        )
        acc.n_images = int(state["n_images"])
        if state["lo"] is not None:
            acc.lo, acc.hi = state["lo"].long().to(device), state["hi"].long().to(device)
        acc.intersection = _unpack_counts(state["intersection"]).to(device)
        acc.unit_area = state["unit_area"].long().to(device)
        acc.unit_area_cat = state["unit_area_cat"].long().to(device)
        acc.label_area = state["label_area"].long().to(device)
        return acc


def _unpack_counts(packed: dict | torch.Tensor) -> torch.Tensor:
    """int64 counts from ``state_dict``'s packed form (dense or nonzero index + values)."""
    if isinstance(packed, torch.Tensor):
        return packed.long()
    if "dense" in packed:
        return packed["dense"].long()
    flat = torch.zeros(math.prod(packed["shape"]), dtype=torch.int64)
    flat[packed["index"].long()] = packed["values"].long()
    return flat.view(*packed["shape"])
