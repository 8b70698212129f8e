"""Why these objects: correlations against known answers, discriminative counts by hand."""

import numpy as np
import pytest

from annotate.explain.emergence_why import (
    correlations,
    discriminative_counts,
    presence_table,
    why_objects_report,
)


def test_correlations_known_answer():
    c = correlations([1, 2, 3, 4, 5], [2, 4, 5, 4, 5])
    # by hand: Pearson 6 / sqrt(10 * 6); Spearman on ranks [1..5] vs [1, 2.5, 4.5, 2.5, 4.5]: 7 / sqrt(10 * 9)
    assert c["pearson_r"] == pytest.approx(6 / np.sqrt(60))
    assert c["spearman_r"] == pytest.approx(7 / np.sqrt(90))
    assert correlations([1, 2, 3], [3, 2, 1])["pearson_r"] == pytest.approx(-1.0)
    assert correlations([1, 1, 1], [1, 2, 3])["pearson_r"] is None


def test_discriminative_counts_by_hand():
    # 3 objects, 2 scenes; object 0 is in every image of scene 0 only, object 1 everywhere,
    # object 2 in scene 1 more often than in scene 0.
    scenes = np.array([0, 0, 1, 1])
    presence = np.array([[1, 1, 0], [1, 1, 1], [0, 1, 1], [0, 1, 1]], bool)
    counts, score = discriminative_counts(presence, scenes, 2, top=1)
    assert score[0].tolist() == pytest.approx([1.0, 0.0, -0.5])
    assert score[1].tolist() == pytest.approx([-1.0, 0.0, 0.5])
    assert counts.tolist() == [1, 0, 1]
    counts2, _ = discriminative_counts(presence, scenes, 2, top=2)
    assert counts2.tolist() == [1, 0, 1]  # a zero or negative score never counts


def test_report():
    maps = [np.array([[1, 2]]), np.array([[2, 2]]), np.array([[3, 0]])]
    presence = presence_table(maps, [1, 2, 3])
    assert presence.tolist() == [[1, 1, 0], [0, 1, 0], [0, 0, 1]]
    report = why_objects_report(
        object_names=["a", "b", "c"],
        scene_names=["s", "t"],
        presence=presence,
        scenes=np.array([0, 0, 1]),
        detectors={"a": 2, "c": 5},
    )
    rows = {r["object"]: r for r in report["objects"]}
    assert rows["a"]["detectors"] == 2 and rows["b"]["detectors"] == 0
    assert rows["b"]["frequency"] == pytest.approx(2 / 3, abs=1e-4)
    assert rows["c"]["scenes"] == ["t"]
    assert report["detectors_vs_frequency"]["n"] == 3
