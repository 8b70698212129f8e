"""Streaming per-unit top-K (or bottom-K) of image scores.

Each unit keeps the K best (score, image id, position) triples seen so far. Ties in score are
broken by image id (lower id wins), so the result depends only on the *set* of images added,
never on batch boundaries, shard sizes or merge order: ``add`` and ``merge`` are associative
and commutative. Memory is O(units x K).

With ``keep_maps=True`` each kept triple also carries the unit's activation map on that image
(float16 [h, w]), replaced whenever the list changes, so rendering needs no second forward pass.
Memory is then O(units x K x h x w) x 2 bytes, still independent of the number of images.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["RunningTopK"]


FP16_MAX = 65504.0  # float16's largest finite value: stored maps are clamped to it


def _best_order(scores, ids, k: int, largest: bool) -> torch.Tensor:
    """Indices [U, min(k, M)] of the best candidates of [U, M] (score best-first, id ascending)."""
    # Stable two-pass sort: ids ascending first, then scores; stability keeps the id order
    # among equal scores, which is the tie-break that makes sharding irrelevant.
    by_id = torch.argsort(ids, dim=1, stable=True)
    order = torch.argsort(torch.gather(scores, 1, by_id), dim=1, descending=largest, stable=True)
    return torch.gather(by_id, 1, order[:, :k])


def _take_maps(old: torch.Tensor, new: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
    """Maps [U, k, h, w] for ``order`` indexing the concatenation [old (k_old) | new (n)] along
    dim 1, without building that concatenation (only the kept maps are copied)."""
    k_old = old.shape[1]
    u, k = order.shape
    rows = torch.arange(u, device=order.device).view(-1, 1).expand(u, k)
    from_old = order < k_old
    out = torch.empty(u, k, *new.shape[2:], dtype=torch.float16, device=new.device)
    if k_old:
        out[from_old] = old[rows[from_old], order[from_old]]
    out[~from_old] = new[rows[~from_old], order[~from_old] - k_old].to(torch.float16)
    return out


@dataclass
class RunningTopK:
    """The K highest (``largest=True``) or lowest scores per unit, with image ids and positions.

    ``scores``: float32 [U, k_seen]; ``image_ids``: int64 [U, k_seen]; ``positions``: int32
    [U, k_seen, 2] (row, col of the unit's spatial max). ``k_seen = min(k, images added)`` and is
    the same for every unit. Row ``u`` is ordered best first. NaN scores rank last.
    ``maps``: float16 [U, k_seen, h, w] activation maps of the kept images when ``keep_maps``
    (values clamped to +-65504, float16's range), else None.
    """

    k: int
    num_units: int
    largest: bool = True
    scores: torch.Tensor | None = None
    image_ids: torch.Tensor | None = None
    positions: torch.Tensor | None = None
    keep_maps: bool = False
    maps: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.k < 0:
            raise ValueError(f"k must be >= 0, got {self.k}")
        if self.scores is None:
            self.scores = torch.empty(self.num_units, 0, dtype=torch.float32)
            self.image_ids = torch.empty(self.num_units, 0, dtype=torch.int64)
            self.positions = torch.empty(self.num_units, 0, 2, dtype=torch.int32)

    @property
    def device(self) -> torch.device:
        return self.scores.device

    def to(self, device) -> RunningTopK:
        """Move the state to ``device`` in place (e.g. keep it on the GPU during extraction)."""
        self.scores = self.scores.to(device)
        self.image_ids = self.image_ids.to(device)
        self.positions = self.positions.to(device)
        if self.maps is not None:
            self.maps = self.maps.to(device)
        return self

    def add(
        self,
        scores: torch.Tensor,
        image_ids: torch.Tensor,
        positions: torch.Tensor | None = None,
        maps: torch.Tensor | None = None,
    ) -> None:
        """Add a batch: ``scores`` [N, U], ``image_ids`` [N] (int), ``positions`` [N, U, 2] or None,
        ``maps`` [N, U, h, w] (required when ``keep_maps``; kept as float16)."""
        if scores.dim() != 2 or scores.shape[1] != self.num_units:
            raise ValueError(f"scores must be [N, {self.num_units}], got {tuple(scores.shape)}")
        n = scores.shape[0]
        if n == 0 or self.k == 0:
            return
        device = self.device
        scores = scores.detach().to(device=device, dtype=torch.float32).t()
        ids = torch.as_tensor(image_ids, dtype=torch.int64, device=device)
        if ids.shape != (n,):
            raise ValueError(f"image_ids must have shape ({n},), got {tuple(ids.shape)}")
        ids = ids.unsqueeze(0).expand(self.num_units, n)
        if positions is None:
            pos = torch.zeros(self.num_units, n, 2, dtype=torch.int32, device=device)
        else:
            pos = positions.detach().to(device=device, dtype=torch.int32).transpose(0, 1)
        new_maps = None
        if self.keep_maps:
            if maps is None or maps.shape[:2] != (n, self.num_units):
                raise ValueError(f"keep_maps needs maps [{n}, {self.num_units}, h, w]")
            # [U, N, h, w] view; clamped so a huge activation stays finite in float16.
            new_maps = maps.detach().to(device).transpose(0, 1).clamp(-FP16_MAX, FP16_MAX)
        self._absorb(scores, ids, pos, new_maps)

    def merge(self, other: RunningTopK) -> RunningTopK:
        """Fold ``other`` (same k, units and direction) into this one; returns self."""
        if other.keep_maps != self.keep_maps:
            raise ValueError("cannot merge RunningTopK with and without maps")
        if (other.k, other.num_units, other.largest) != (self.k, self.num_units, self.largest):
            raise ValueError(
                "cannot merge RunningTopK with different shape: "
                f"(k, units, largest)={(self.k, self.num_units, self.largest)} vs "
                f"{(other.k, other.num_units, other.largest)}"
            )
        if other.scores.shape[1] == 0:
            return self
        device = self.device
        other_maps = None if other.maps is None else other.maps.to(device)
        self._absorb(
            other.scores.to(device),
            other.image_ids.to(device),
            other.positions.to(device),
            other_maps,
        )
        return self

    def _absorb(self, scores, ids, pos, maps=None) -> None:
        # NaN would make the sort order undefined; rank it last.
        scores = torch.nan_to_num(scores, nan=float("-inf") if self.largest else float("inf"))
        all_scores = torch.cat([self.scores, scores], 1)
        all_ids = torch.cat([self.image_ids, ids], 1)
        order = _best_order(all_scores, all_ids, self.k, self.largest)
        self.scores = torch.gather(all_scores, 1, order)
        self.image_ids = torch.gather(all_ids, 1, order)
        all_pos = torch.cat([self.positions, pos], 1)
        self.positions = torch.gather(all_pos, 1, order.unsqueeze(-1).expand(-1, -1, 2))
        if self.keep_maps:
            old = self.maps
            if old is None:
                old = torch.empty(self.num_units, 0, *maps.shape[2:], dtype=torch.float16)
            self.maps = _take_maps(old.to(maps.device), maps, order)

    def state_dict(self) -> dict:
        """Plain tensors and ints (CPU), loadable with ``torch.load(weights_only=True)``."""
        return {
            "k": self.k,
            "num_units": self.num_units,
            "largest": self.largest,
            "scores": self.scores.cpu(),
            "image_ids": self.image_ids.cpu(),
            "positions": self.positions.cpu(),
            "keep_maps": self.keep_maps,
            "maps": None if self.maps is None else self.maps.cpu(),
        }

    @classmethod
    def from_state_dict(cls, state: dict) -> RunningTopK:
        return cls(
            k=int(state["k"]),
            num_units=int(state["num_units"]),
            largest=bool(state["largest"]),
            scores=state["scores"].to(torch.float32),
            image_ids=state["image_ids"].to(torch.int64),
            positions=state["positions"].to(torch.int32),
            keep_maps=bool(state.get("keep_maps", False)),
            maps=None if state.get("maps") is None else state["maps"].to(torch.float16),
        )
