"""Streaming per-unit top-K (or bottom-K) of image scores.

Each unit keeps the K best (score, image id, position) triples seen so far. Ties in score are
broken by image id (lower id wins), so the result depends only on the *set* of images added,
never on batch boundaries, shard sizes or merge order: ``add`` and ``merge`` are associative
and commutative. Memory is O(units x K).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["RunningTopK"]


def _rank_and_keep(scores, ids, positions, k: int, largest: bool):
    """Sort candidates [U, M] by (score best-first, id ascending) and keep the first k."""
    # Stable two-pass sort: ids ascending first, then scores; stability keeps the id order
    # among equal scores, which is the tie-break that makes sharding irrelevant.
    by_id = torch.argsort(ids, dim=1, stable=True)
    scores = torch.gather(scores, 1, by_id)
    ids = torch.gather(ids, 1, by_id)
    positions = torch.gather(positions, 1, by_id.unsqueeze(-1).expand(-1, -1, 2))
    order = torch.argsort(scores, dim=1, descending=largest, stable=True)[:, :k]
    return (
        torch.gather(scores, 1, order),
        torch.gather(ids, 1, order),
        torch.gather(positions, 1, order.unsqueeze(-1).expand(-1, -1, 2)),
    )


@dataclass
class RunningTopK:
    """The K highest (``largest=True``) or lowest scores per unit, with image ids and positions.

    ``scores``: float32 [U, k_seen]; ``image_ids``: int64 [U, k_seen]; ``positions``: int32
    [U, k_seen, 2] (row, col of the unit's spatial max). ``k_seen = min(k, images added)`` and is
    the same for every unit. Row ``u`` is ordered best first. NaN scores rank last.
    """

    k: int
    num_units: int
    largest: bool = True
    scores: torch.Tensor | None = None
    image_ids: torch.Tensor | None = None
    positions: torch.Tensor | None = None

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
        return self

    def add(
        self,
        scores: torch.Tensor,
        image_ids: torch.Tensor,
        positions: torch.Tensor | None = None,
    ) -> None:
        """Add a batch: ``scores`` [N, U], ``image_ids`` [N] (int), ``positions`` [N, U, 2] or None."""
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
        self._absorb(scores, ids, pos)

    def merge(self, other: RunningTopK) -> RunningTopK:
        """Fold ``other`` (same k, units and direction) into this one; returns self."""
        if (other.k, other.num_units, other.largest) != (self.k, self.num_units, self.largest):
            raise ValueError(
                "cannot merge RunningTopK with different shape: "
                f"(k, units, largest)={(self.k, self.num_units, self.largest)} vs "
                f"{(other.k, other.num_units, other.largest)}"
            )
        device = self.device
        self._absorb(
            other.scores.to(device), other.image_ids.to(device), other.positions.to(device)
        )
        return self

    def _absorb(self, scores, ids, pos) -> None:
        # NaN would make the sort order undefined; rank it last.
        scores = torch.nan_to_num(scores, nan=float("-inf") if self.largest else float("inf"))
        self.scores, self.image_ids, self.positions = _rank_and_keep(
            torch.cat([self.scores, scores], 1),
            torch.cat([self.image_ids, ids], 1),
            torch.cat([self.positions, pos], 1),
            self.k,
            self.largest,
        )

    def state_dict(self) -> dict:
        """Plain tensors and ints (CPU), loadable with ``torch.load(weights_only=True)``."""
        return {
            "k": self.k,
            "num_units": self.num_units,
            "largest": self.largest,
            "scores": self.scores.cpu(),
            "image_ids": self.image_ids.cpu(),
            "positions": self.positions.cpu(),
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
        )
