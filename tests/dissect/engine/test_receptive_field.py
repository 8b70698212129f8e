"""Empirical receptive fields on synthetic networks whose true RF is known."""

import math

import torch
from torch import nn

from dissect.engine import estimate_receptive_fields, heatmap_image, rf_size_from_heatmap
from dissect.networks import LoadedNetwork


def box_net(kernel: int, input_size: int) -> LoadedNetwork:
    """One conv: every unit sums a kernel x kernel window (RF = kernel x kernel), then ReLU."""
    conv = nn.Conv2d(3, 2, kernel, padding=kernel // 2, bias=False)
    with torch.no_grad():
        conv.weight.fill_(1.0)
        conv.weight[1] *= 2
    model = nn.Sequential(conv, nn.ReLU()).eval()
    return LoadedNetwork(
        model=model,
        arch="box",
        class_names=[],
        preprocessing={
            "input_size": input_size,
            "resize": input_size,
            "crop": "center",
            "mean": [0.0] * 3,
            "std": [1.0] * 3,
        },  # fmt: skip
        layer_aliases={"box": "1"},
    )


def bright_spot_image(size, y, x):
    image = torch.zeros(3, size, size)
    image[:, y, x] = 10.0  # the unit's max sits wherever its window covers this spot
    return image + 0.01


def test_single_pixel_occluder_recovers_the_exact_rf():
    net = box_net(7, 21)
    images = {1: bright_spot_image(21, 7, 9), 2: bright_spot_image(21, 12, 13)}
    result = estimate_receptive_fields(
        net, "box", {0: [1, 2], 1: [2]}, images.__getitem__,
        patch_px=1, stride_px=1, fraction=0.01, device="cpu",
    )  # fmt: skip
    for unit in result.units:
        assert unit.extent_px == 7
        assert math.isclose(unit.rf_px, 2 * math.sqrt(49 / math.pi), rel_tol=1e-6)
        # Centered: the support is the 7 x 7 box around the canvas center.
        center = unit.heatmap.shape[0] // 2
        support = torch.nonzero(unit.heatmap > 0)
        assert support.min().item() >= center - 3 and support.max().item() <= center + 3
    assert [u.n_images for u in result.units] == [2, 1]
    assert math.isclose(result.mean_px, 2 * math.sqrt(49 / math.pi), rel_tol=1e-6)
    assert result.std_px < 1e-6
    assert heatmap_image(result.units[0], size_px=40).size == (40, 40)


def plateau_image(size, top, left, side):
    image = torch.zeros(3, size, size)
    image[:, top : top + side, left : left + side] = 1.0  # the unit peaks where its box fits
    return image


def test_bigger_true_rf_measures_bigger_with_a_noise_occluder():
    images = {i: plateau_image(32, 6 + i, 5 + 2 * i, 18) for i in range(3)}
    extents = {}
    for kernel in (5, 11):
        result = estimate_receptive_fields(
            box_net(kernel, 32), "box", {0: [0, 1, 2]}, images.__getitem__,
            patch_px=3, stride_px=2, fraction=0.02, batch_size=50, device="cpu",
        )  # fmt: skip
        extents[kernel] = result.units[0].extent_px
    # The support is the true RF dilated by the occluder (3 px), sampled on a 2 px grid.
    for kernel, extent in extents.items():
        assert kernel <= extent <= kernel + 3 + 2


def test_rf_size_definition():
    heat = torch.zeros(9, 9)
    heat[3:6, 2:7] = 1.0
    heat[4, 4] = 2.0
    diameter, extent = rf_size_from_heatmap(heat, stride_px=3, fraction=0.5)
    assert extent == 5 * 3
    assert math.isclose(diameter, 2 * math.sqrt(15 * 9 / math.pi))
    assert rf_size_from_heatmap(torch.zeros(3, 3), stride_px=1) == (0.0, 0.0)


def test_skipping_positions_outside_the_theoretical_rf_changes_nothing(net):
    g = torch.Generator().manual_seed(0)
    images = {i: torch.randn(3, 32, 32, generator=g) for i in range(3)}
    runs = [
        estimate_receptive_fields(
            net,
            "pool1",
            {0: [0, 1], 4: [1, 2]},
            images.__getitem__,
            patch_px=3,
            stride_px=2,
            device="cpu",
            skip_outside_rf=skip,
        )  # fmt: skip
        for skip in (True, False)
    ]
    for fast, full in zip(runs[0].units, runs[1].units, strict=True):
        assert torch.allclose(fast.heatmap, full.heatmap, atol=1e-6)
        assert fast.rf_px == full.rf_px
