"""Mask recipes on hand-made activation maps; dimming, tiles and montages."""

import numpy as np
import pytest
import torch
from PIL import Image

from dissect.engine import (
    apply_mask,
    make_mask,
    make_masks,
    make_montage,
    make_tile,
    mask_activation,
    mask_quantile,
    mask_rf_disk,
    masked_tile,
    tile_layers,
)


def one_hot_map(h=4, w=4, cell=(1, 2), value=2.0):
    amap = torch.zeros(h, w)
    amap[cell] = value
    return amap


def test_rf_disk_is_a_disk_of_the_rf_diameter_on_the_hot_cell():
    # Cell (1, 2) of a 4x4 map on a 40x40 image covers x 20..30, y 10..20: center (25, 15).
    mask = mask_rf_disk(one_hot_map(), (40, 40), rf_diameter_px=10)
    ys, xs = np.nonzero(mask)
    assert abs(xs.mean() - 24.5) < 0.6 and abs(ys.mean() - 14.5) < 0.6
    assert abs(mask.sum() - np.pi * 5**2) < 12  # area of a disk of diameter 10
    assert xs.max() - xs.min() + 1 == 10


def test_rf_disk_scales_from_network_input_pixels_and_unions_cells():
    amap = torch.tensor([[1.0, 0.0], [0.0, 0.6]])  # two cells above 0.5 x max
    small = mask_rf_disk(amap, (100, 100), rf_diameter_px=20, input_size=200)
    assert small[25, 25] and small[75, 75] and not small[25, 75]
    ys, xs = np.nonzero(small[:50, :50])
    assert xs.max() - xs.min() + 1 == 10  # 20 px at 200 px input = 10 px on a 100 px image
    below = mask_rf_disk(torch.tensor([[1.0, 0.4]]), (20, 10), rf_diameter_px=4)
    assert below[:, :10].any() and not below[:, 10:].any()


def test_activation_recipe_normalizes_by_max_and_thresholds():
    amap = torch.tensor([[0.0, 0.1], [0.5, 1.0]]) * 7  # scale must not matter
    mask = mask_activation(amap, (20, 20), threshold=0.2)
    assert mask.shape == (20, 20) and mask.dtype == bool
    assert mask[15, 15] and not mask[5, 5]
    assert mask[15, 5]  # the 0.5 cell survives a 0.2 threshold
    assert not mask_activation(amap, (20, 20), threshold=0.99)[15, 5]


def test_quantile_recipe_uses_the_raw_level():
    amap = torch.tensor([[0.0, 3.0], [1.0, 0.0]])
    mask = mask_quantile(amap, (40, 40), level=2.0)
    assert mask[10, 30] and not mask[30, 10] and not mask[10, 10]
    assert not mask_quantile(amap, (40, 40), level=5.0).any()


@pytest.mark.parametrize("recipe", ["quantile", "activation", "rf-disk"])
def test_make_masks_equals_one_make_mask_per_map(recipe):
    # Rendering builds a batch's masks at once; each must be the mask make_mask gives alone,
    # whatever the map shapes mixed in one call (layers of one run differ in size).
    gen = torch.Generator().manual_seed(0)
    maps = [torch.randn(8, 8, generator=gen) for _ in range(5)]
    maps += [torch.randn(4, 4, generator=gen), torch.randn(1, 1, generator=gen)]
    if recipe == "quantile":
        params = [{"level": 0.3 + 0.1 * i} for i in range(len(maps))]
    elif recipe == "activation":
        params = [{"threshold": 0.2}] * len(maps)
    else:
        params = [{"rf_diameter_px": 20.0, "input_size": 64}] * len(maps)
    masks = make_masks(recipe, maps, (64, 64), params)
    for amap, p, mask in zip(maps, params, masks, strict=True):
        expected = make_mask(recipe, amap, (64, 64), **p)
        assert mask.shape == expected.shape == (64, 64)
        assert np.array_equal(mask, expected)
    assert any(m.any() for m in masks) and not all(m.all() for m in masks)


def test_flat_or_negative_maps_give_empty_masks():
    for recipe, params in (("rf-disk", {"rf_diameter_px": 8}), ("activation", {})):
        assert not make_mask(recipe, torch.zeros(3, 3), (9, 9), **params).any()
        assert not make_mask(recipe, -torch.ones(3, 3), (9, 9), **params).any()
    with pytest.raises(ValueError, match="unknown mask recipe"):
        make_mask("blob", torch.zeros(2, 2), (4, 4))


def test_apply_mask_dims_outside_to_twenty_percent():
    image = Image.new("RGB", (4, 2), (200, 100, 50))
    mask = np.zeros((2, 4), dtype=bool)
    mask[:, :2] = True
    out = apply_mask(image, mask)
    assert out.getpixel((0, 0)) == (200, 100, 50)
    assert out.getpixel((3, 1)) == (40, 20, 10)


def test_a_tile_from_shared_layers_equals_make_tile():
    # Rendering dims each view once and makes all of its tiles from the two layers.
    gen = np.random.default_rng(0)
    image = Image.fromarray(gen.integers(0, 256, (32, 32, 3), dtype=np.uint8), "RGB")
    layers = tile_layers(image)
    for _ in range(4):
        mask = gen.random((32, 32)) > 0.5
        tile = masked_tile(layers, mask, tile_px=24)
        assert tile.size == (24, 24)
        assert np.array_equal(np.asarray(tile), np.asarray(make_tile(image, mask, tile_px=24)))
    dimmed = np.asarray(apply_mask(image, np.zeros((32, 32), dtype=bool)))
    expected = np.clip(np.asarray(image, dtype=np.float32) * np.float32(0.2) + 0.5, 0, 255)
    assert np.array_equal(dimmed, expected.astype(np.uint8))
    with pytest.raises(ValueError, match="does not match"):
        masked_tile(layers, np.zeros((8, 8), dtype=bool))


def test_tiles_and_montage():
    image = Image.new("RGB", (64, 64), (255, 255, 255))
    tile = make_tile(image, np.ones((64, 64), dtype=bool))
    assert tile.size == (120, 120)
    tiles = [make_tile(image, tile_px=30) for _ in range(7)]
    sheet = make_montage(tiles, gap_px=2)
    assert sheet.size == (3 * 30 + 2 * 2, 3 * 30 + 2 * 2)  # 7 tiles -> 3 x 3 grid
    assert make_montage(tiles, columns=7, gap_px=0).size == (210, 30)
