"""explain() on the color network, whose units' true concepts and masks are known exactly."""

import numpy as np
from PIL import Image

from annotate.explain.core import explain, mask_rle
from annotate.explain.evaluation import mask_iou
from annotate.explain.labeled import LabeledUnit
from tests.color_world import COLORS, THRESHOLD, color_sample


def rle_decode(rle: dict) -> np.ndarray:
    values, flat = False, []
    for count in rle["counts"]:
        flat += [values] * count
        values = not values
    return np.array(flat, dtype=bool).reshape(rle["size"])


def labeled(unit: int, *, source: str = "auto", concept: str | None = None, top: float = 1.0):
    name = concept or f"{COLORS[unit]} box"
    return LabeledUnit("conv", unit, name, "object", THRESHOLD, top, source, 0.5, unit_id=unit)


def test_scene_and_concept_masks_match_the_truth(color_net):
    rng = np.random.default_rng(7)
    units = [labeled(u) for u in range(3)] + [labeled(3, concept="dead")]  # unit 3 never fires
    scene_hits, ious = 0, []
    for _ in range(20):
        image, labels, scene = color_sample(rng)
        result = explain(net=color_net, units=units, image=Image.fromarray(image), mask_px=32)
        scene_hits += result.scenes[0].index == scene
        assert (
            len(result.scenes) == 3 and result.scenes[0].probability >= result.scenes[1].probability
        )
        found = {c.concept: c for c in result.concepts}
        for k, color in enumerate(COLORS):
            truth = labels == k + 1
            if truth.sum() >= 64:  # boxes of at least two map cells always fire
                assert f"{color} box" in found
            if f"{color} box" in found:
                ious.append(mask_iou(found[f"{color} box"].mask, truth))
        assert all(c.units[0].unit != 3 for c in result.concepts)
    assert scene_hits / 20 >= 0.9  # measured 1.0: the classifier sums color areas
    assert np.mean(ious) >= 0.6  # measured 0.85 (8x8 maps upsampled to 32 px)


def test_same_concept_merges_and_best_unit_comes_first(color_net):
    image = np.zeros((32, 32, 3), np.uint8)
    image[0:16, 0:16, 0] = 255  # a bright red box
    image[16:32, 16:32, 1] = 128  # a dim green box
    units = [
        labeled(0, concept="thing", top=2.0),
        labeled(1, concept="thing", top=1.0),
        labeled(0, source="crowd", concept="red box", top=2.0),
    ]
    result = explain(net=color_net, units=units, image=Image.fromarray(image), mask_px=32)
    by_name = {c.concept: c for c in result.concepts}
    thing = by_name["thing"]
    # Confidence = peak / top-1 score: red peaks at 1.0 (top 2.0), green at 0.5 (top 1.0).
    assert [u.unit for u in thing.units] == [1, 0] or [u.unit for u in thing.units] == [0, 1]
    confidences = {u.unit: u.confidence for u in thing.units}
    np.testing.assert_allclose([confidences[0], confidences[1]], [0.5, 128 / 255], rtol=1e-4)
    assert thing.units[0].confidence == max(confidences.values())
    red = np.zeros((32, 32), bool)
    red[:16, :16] = True
    green = np.zeros((32, 32), bool)
    green[16:, 16:] = True
    assert mask_iou(thing.mask, red | green) > 0.7
    assert by_name["red box"].units[0].source == "crowd"
    assert mask_iou(by_name["red box"].mask, red) > 0.7
    payload = result.as_dict()
    assert {c["concept"] for c in payload["concepts"]} == {"thing", "red box"}
    for entry, concept in zip(payload["concepts"], result.concepts, strict=True):
        assert (rle_decode(entry["mask_rle"]) == concept.mask).all()


def test_units_below_threshold_give_nothing(color_net):
    image = np.full((32, 32, 3), 40, np.uint8)  # dim gray: every unit peaks at 40/255 < 0.3
    result = explain(
        net=color_net, units=[labeled(u) for u in range(3)], image=Image.fromarray(image)
    )
    assert result.concepts == []
    assert result.scenes  # the classifier still answers


def test_mask_rle_round_trip():
    rng = np.random.default_rng(0)
    for shape in [(5, 7), (1, 1), (8, 8)]:
        mask = rng.random(shape) > 0.5
        assert (rle_decode(mask_rle(mask)) == mask).all()
    full = np.ones((3, 3), bool)
    assert mask_rle(full)["counts"][0] == 0
