"""Minimal images: the greedy rule against brute force, and the segment fill."""

from itertools import combinations

import numpy as np
import pytest

from annotate.explain.minimal import (
    fill_removed,
    greedy_minimal,
    ground_truth_segments,
    slic_segments,
)


def _table_scorer(table: dict[frozenset, np.ndarray]):
    def score(kept: np.ndarray) -> np.ndarray:
        return np.stack([table[frozenset(np.flatnonzero(row).tolist())] for row in kept])

    return score


def test_greedy_matches_brute_force_on_an_additive_score():
    # correct class score = sum of kept weights; the other class is a constant bar. Then the
    # smallest set of segments still classified correctly is found by brute force over subsets.
    weights = np.array([0.9, 0.1, 0.5, 0.3, 0.7])
    bar = 1.05
    n = len(weights)

    def score(kept):
        s = kept @ weights
        return np.stack([s, np.full_like(s, bar)], axis=1)

    result = greedy_minimal(score, n, 0)
    best = None
    for size in range(n + 1):
        ok = [c for c in combinations(range(n), size) if weights[list(c)].sum() > bar]
        if ok:
            best = max(ok, key=lambda c: weights[list(c)].sum())
            break
    assert sorted(result.kept) == sorted(best)
    assert result.removed == [1, 3, 2]  # smallest weight first
    assert not result.steps[-1].correct and all(s.correct for s in result.steps[:-1])


def test_each_greedy_step_is_the_brute_force_best_single_removal():
    rng = np.random.default_rng(3)
    n, classes = 4, 3
    table = {}
    for size in range(n + 1):
        for c in combinations(range(n), size):
            table[frozenset(c)] = rng.normal(size=classes)
    table[frozenset(range(n))][0] = 10.0  # correct at the start
    result = greedy_minimal(_table_scorer(table), n, 0)
    kept = set(range(n))
    for step in result.steps:
        options = {s: table[frozenset(kept - {s})] for s in sorted(kept)}
        best = max(options, key=lambda s: (options[s][0], -s))
        assert step.segment == best
        assert step.score == pytest.approx(options[best][0])
        assert step.correct == (int(np.argmax(options[best])) == 0)
        if not step.correct:
            break
        kept.discard(best)
    assert sorted(result.kept) == sorted(kept)


def test_misclassified_image_keeps_everything():
    result = greedy_minimal(lambda kept: np.tile([0.0, 1.0], (len(kept), 1)), 3, 0)
    assert not result.correct_at_start and result.steps == [] and result.kept == [0, 1, 2]


@pytest.mark.parametrize("mode", ["smooth", "grey"])
def test_fill_leaves_unremoved_pixels_unchanged(mode):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
    removed = np.zeros((40, 40), bool)
    removed[5:20, 10:30] = True
    out = fill_removed(image, removed, mode=mode)
    assert np.array_equal(out[~removed], image[~removed])
    # nothing of the removed content leaks in: other content there, same result
    other = image.copy()
    other[removed] = 0
    assert np.array_equal(fill_removed(other, removed, mode=mode), out)
    # no black holes: the fill sits near the kept pixels' grey, and (smooth) varies gently
    assert abs(float(out[removed].mean()) - float(image[~removed].mean())) < 40
    assert out[removed].min() > 30


def test_smooth_fill_follows_the_surroundings():
    image = np.zeros((32, 32, 3), np.uint8)
    image[:, :16] = (200, 20, 20)
    image[:, 16:] = (20, 20, 200)
    removed = np.zeros((32, 32), bool)
    removed[10:22, 12:20] = True
    out = fill_removed(image, removed, mode="smooth")
    assert out[16, 12, 0] > out[16, 12, 2] and out[16, 19, 2] > out[16, 19, 0]


def test_segments():
    object_map = np.array([[0, 3, 3], [7, 7, 3]], np.uint8)
    segments, labels = ground_truth_segments(object_map)
    assert labels == [3, 7]
    assert segments.tolist() == [[-1, 0, 0], [1, 1, 0]]
    image = np.zeros((32, 32, 3), np.uint8)
    image[:, 16:] = 255
    slic = slic_segments(image, n_segments=4)
    assert slic.min() == 0 and len(np.unique(slic)) == slic.max() + 1
