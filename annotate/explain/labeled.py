"""The labeled unit explain() works from (torch-free, so selectors can build it)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["LabeledUnit"]


@dataclass(frozen=True)
class LabeledUnit:
    """A unit with a concept: ``source`` 'crowd' (score = precision) or 'auto' (score = IoU).

    ``threshold`` is the unit's activation quantile from its run, ``top_score`` its top-1 score
    (max activation over the run's images)."""

    layer: str
    unit: int
    concept: str
    category: str
    threshold: float
    top_score: float
    source: str = "crowd"
    score: float | None = None
    unit_id: int | None = None
