"""explain() on the trained demo-places network, with automatic labels whose ground truth is
known (the demo world's pixel labels), on held-out scenes (another world seed)."""

import numpy as np
import pytest
from PIL import Image

from annotate.explain.core import explain
from annotate.explain.evaluation import mask_iou
from annotate.explain.labeled import LabeledUnit
from dissect.autolabel import best_labels_by_category, compute_auto_labels
from dissect.broden import read_broden


@pytest.fixture(scope="module")
def demo_places():
    from dissect.networks import NetworkLoadError, load_network

    try:
        return load_network("demo-places")
    except NetworkLoadError as exc:  # committed checkpoints: a load failure is a bug, not a skip
        pytest.fail(f"the committed demo-places checkpoint does not load: {exc}")


@pytest.fixture(scope="module")
def demo_units(demo_places, tmp_path_factory):
    """Automatic labels of conv5 from 120 demo-world scenes (seed 0), IoU >= 0.04."""
    from dissect.demo.world import write_demo_world

    root = write_demo_world(tmp_path_factory.mktemp("world"), n_images=120, seed=0, size=128)
    dataset = read_broden(root)
    result = compute_auto_labels(
        net=demo_places, layers=["conv5"], dataset=dataset, mask_px=32, batch_size=60
    )["conv5"]
    units = []
    for rows in best_labels_by_category(result.iou, dataset):
        if rows and rows[0].iou >= 0.04:
            best = rows[0]
            category = next(r.category for r in rows[1:] if r.label_number == best.label_number)
            threshold = float(result.thresholds[best.unit])
            units.append(
                LabeledUnit(
                    "conv5", best.unit, best.label, category, threshold, 1.0, "auto", best.iou
                )
            )
    return units


def test_scene_and_object_masks_on_held_out_scenes(demo_places, demo_units):
    from dissect.demo.world import label_number, render

    objects = [u for u in demo_units if u.category == "object"]
    assert len(objects) >= 10
    scene_hits, ious = 0, []
    n = 30
    for i in range(n):
        sample = render(1, i, size=128, variant="scenes")
        result = explain(
            net=demo_places, units=objects, image=Image.fromarray(sample.image), mask_px=64
        )
        scene_hits += result.scenes[0].label == sample.scene
        truth_maps = Image.fromarray(sample.object).resize((64, 64), Image.NEAREST)
        truth_maps = np.asarray(truth_maps)
        for concept in result.concepts:
            truth = truth_maps == label_number("object", concept.concept)
            if truth.any():  # the object is there: how well does its concept mask cover it?
                ious.append(mask_iou(concept.mask, truth))
    print(f"scene top-1 {scene_hits / n:.2f}, object mask IoU {np.mean(ious):.3f} over {len(ious)}")
    assert scene_hits / n >= 0.8  # measured 0.97 (the network's held-out accuracy is 89%)
    assert len(ious) >= 10
    assert np.mean(ious) >= 0.2  # measured 0.27 over 36 pairs
