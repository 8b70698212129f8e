"""Evaluation: AP against a brute-force definition; the color network's labeled units beat the
random-unit baseline at detection and localization."""

import numpy as np
import torch

from annotate.explain.evaluation import average_precision, evaluate_localization, mask_iou
from annotate.explain.labeled import LabeledUnit
from tests.color_world import COLORS, THRESHOLD, color_sample


def brute_force_ap(scores, positives) -> float:
    """Mean over positives of: positives ranked at or above it / images ranked at or above it."""
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    rank = {i: r for r, i in enumerate(order)}
    values = []
    for i in range(len(scores)):
        if positives[i]:
            above = [j for j in range(len(scores)) if rank[j] <= rank[i]]
            values.append(sum(positives[j] for j in above) / len(above))
    return sum(values) / len(values)


def test_average_precision_matches_brute_force():
    rng = np.random.default_rng(0)
    for n in (1, 5, 40):
        scores = rng.integers(0, 6, n).astype(float).tolist()  # many ties
        positives = (rng.random(n) > 0.6).tolist()
        if not any(positives):
            positives[0] = True
        assert abs(average_precision(scores, positives) - brute_force_ap(scores, positives)) < 1e-12
    assert np.isnan(average_precision([1.0, 2.0], [False, False]))


def test_mask_iou():
    a = np.zeros((4, 4), bool)
    b = np.zeros((4, 4), bool)
    a[:2] = True
    b[1:3] = True
    assert mask_iou(a, b) == 4 / 12
    assert mask_iou(a & False, b & False) == 1.0


def test_labeled_units_beat_the_random_baseline(color_net):
    rng = np.random.default_rng(21)
    samples = [color_sample(rng) for _ in range(60)]
    images = np.stack([s[0] for s in samples])
    maps = np.stack([s[1] for s in samples])
    scenes = np.array([s[2] for s in samples])
    units = [
        LabeledUnit("conv", k, f"{c} box", "object", THRESHOLD, 1.0, "auto", 0.5)
        for k, c in enumerate(COLORS)
    ]
    result = evaluate_localization(
        net=color_net,
        units=units,
        images=images,
        object_maps=maps,
        scene_index=scenes,
        concept_labels={f"{c} box": k + 1 for k, c in enumerate(COLORS)},
        layer_thresholds={"conv": torch.full((4,), THRESHOLD)},
        n_random=3,
        batch_size=16,
    )
    assert result.scene_top1 >= 0.9  # measured 1.0
    assert len(result.concepts) == 3
    for c in result.concepts:
        assert c.ap > c.baseline_ap and c.miou > c.baseline_miou
    assert result.mean("ap") >= 0.95  # measured 1.0: a unit fires exactly on its color
    assert result.mean("miou") >= 0.6  # measured ~0.8
    assert result.mean("baseline_miou") < 0.3
