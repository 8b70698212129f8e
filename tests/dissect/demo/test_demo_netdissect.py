"""The dataset-pooled IoU and the exact top-quantile threshold against brute-force versions."""

import pytest
import torch

from dissect.netdissect import (
    IoUAccumulator,
    RunningTopValues,
    best_labels,
    top_k_for_quantile,
    unit_masks,
)


def brute_force_iou(masks: torch.Tensor, label_maps: torch.Tensor, n_labels: int) -> torch.Tensor:
    """IoU[u, l] over the whole dataset with explicit loops: |mask & has_l| / |mask | has_l|."""
    n_units = masks.shape[1]
    iou = torch.zeros(n_units, n_labels)
    for u in range(n_units):
        for label in range(1, n_labels):
            has_label = (label_maps == label).any(dim=1)  # (batch, H, W)
            inter = (masks[:, u] & has_label).sum().item()
            union = (masks[:, u] | has_label).sum().item()
            iou[u, label] = inter / union if union else 0.0
    return iou


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_iou_matches_brute_force_over_batches(seed):
    gen = torch.Generator().manual_seed(seed)
    n_units, n_labels, size = 5, 9, (12, 10)
    acc = IoUAccumulator(n_units, n_labels)
    all_masks, all_maps = [], []
    for _ in range(3):  # pooled over several batches
        masks = torch.rand(4, n_units, *size, generator=gen) < 0.3
        # Two maps whose label numbers never collide, as object/part maps in the demo world.
        maps = torch.stack(
            [
                torch.randint(0, 5, (4, *size), generator=gen),
                torch.randint(5, 9, (4, *size), generator=gen)
                * (torch.rand(4, *size, generator=gen) < 0.5),
            ],
            dim=1,
        )
        acc.add(masks, maps)
        all_masks.append(masks)
        all_maps.append(maps)
    expected = brute_force_iou(torch.cat(all_masks), torch.cat(all_maps), n_labels)
    assert torch.allclose(acc.iou(), expected, atol=1e-6)


def test_merge_equals_single_pass():
    gen = torch.Generator().manual_seed(7)
    masks = torch.rand(6, 3, 8, 8, generator=gen) < 0.2
    maps = torch.randint(0, 6, (6, 1, 8, 8), generator=gen)
    whole = IoUAccumulator(3, 6)
    whole.add(masks, maps)
    first, second = IoUAccumulator(3, 6), IoUAccumulator(3, 6)
    first.add(masks[:2], maps[:2])
    second.add(masks[2:], maps[2:])
    first.merge(second)
    assert torch.equal(first.intersection, whole.intersection)
    assert torch.equal(first.iou(), whole.iou())


def test_empty_masks_give_zero_iou():
    acc = IoUAccumulator(2, 4)
    acc.add(torch.zeros(2, 2, 5, 5, dtype=torch.bool), torch.randint(0, 4, (2, 1, 5, 5)))
    assert acc.iou().abs().sum() == 0


def test_mismatched_shapes_are_refused():
    acc = IoUAccumulator(2, 4)
    with pytest.raises(ValueError, match="must share"):
        acc.add(torch.zeros(2, 2, 5, 5, dtype=torch.bool), torch.zeros(2, 1, 6, 5))


def test_top_values_threshold_is_the_exact_quantile():
    gen = torch.Generator().manual_seed(3)
    acts = torch.randn(40, 6, 7, 7, generator=gen)
    n_values = 40 * 7 * 7
    k = top_k_for_quantile(n_values, 0.995)
    assert k == 10  # ceil((1 - 0.995) * 1960)
    top = RunningTopValues(6, k)
    for start in range(0, 40, 9):
        top.add(acts[start : start + 9])
    per_unit = acts.transpose(0, 1).reshape(6, -1)
    expected = per_unit.sort(dim=1, descending=True).values[:, k - 1]
    assert torch.equal(top.threshold(), expected)
    # Exactly k values per unit are at or above the threshold (no ties in random floats).
    assert ((per_unit >= expected[:, None]).sum(dim=1) == k).all()


def test_top_values_merge_and_too_few_values():
    acts = torch.arange(60, dtype=torch.float32).view(3, 2, 10)
    a, b = RunningTopValues(2, 4), RunningTopValues(2, 4)
    a.add(acts[:1])
    b.add(acts[1:])
    a.merge(b)
    single = RunningTopValues(2, 4)
    single.add(acts)
    assert torch.equal(a.threshold(), single.threshold())
    short = RunningTopValues(2, 50)
    short.add(acts[:1])
    with pytest.raises(ValueError, match="fewer than k"):
        short.threshold()


def test_unit_masks_upsample_bilinearly_then_threshold():
    acts = torch.zeros(1, 2, 2, 2)
    acts[0, 0, 0, 0] = 1.0  # unit 0: hot top-left cell
    masks = unit_masks(acts, torch.tensor([0.5, 0.5]), (8, 8))
    assert masks.shape == (1, 2, 8, 8)
    assert masks[0, 0, 0, 0] and not masks[0, 0, 7, 7]
    assert not masks[0, 1].any()
    up = torch.nn.functional.interpolate(acts, size=(8, 8), mode="bilinear", align_corners=False)
    assert torch.equal(masks, up > 0.5)


def test_best_labels_picks_the_highest_iou():
    iou = torch.tensor([[0.0, 0.1, 0.3], [0.0, 0.5, 0.2]])
    labels, values = best_labels(iou)
    assert labels.tolist() == [2, 1]
    assert values.tolist() == pytest.approx([0.3, 0.5])


@pytest.mark.parametrize("seed", [0, 1])
def test_sparse_activation_path_equals_dense_masks(seed):
    gen = torch.Generator().manual_seed(seed)
    acts = torch.randn(5, 7, 4, 4, generator=gen).relu()
    thresholds = torch.rand(7, generator=gen) * 2
    maps = torch.randint(0, 6, (5, 2, 16, 16), generator=gen)
    dense, sparse = IoUAccumulator(7, 6), IoUAccumulator(7, 6)
    dense.add(unit_masks(acts, thresholds, (16, 16)), maps)
    sparse.add_activations(acts, thresholds, maps)
    assert torch.equal(dense.intersection, sparse.intersection)
    assert torch.equal(dense.unit_area, sparse.unit_area)
    assert torch.equal(dense.label_area, sparse.label_area)
