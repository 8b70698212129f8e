"""Bilinear upsampling for IoU counting: the pruned evaluation (``hot_pixels``) finds exactly the
pixels and values the dense one (``upsample``) has above a cut, and both are NetDissect's bilinear
resize (``F.interpolate``, ``align_corners=False``) up to float32 rounding."""

import pytest
import torch
import torch.nn.functional as F

from dissect.engine.upsample import hot_pixels, upsample

SHAPES = [
    ((8, 8), (128, 128)),
    ((7, 7), (112, 112)),
    ((5, 3), (17, 29)),
    ((16, 16), (8, 8)),
    ((1, 6), (1, 24)),
    ((13, 13), (113, 113)),
    ((1, 1), (9, 9)),
    ((4, 4), (128, 128)),
]  # fmt: skip  (the last: large blocks, pruned by column)


@pytest.mark.parametrize(("small", "big"), SHAPES)
def test_upsample_is_bilinear_up_to_float_rounding(small, big):
    maps = torch.randn(6, *small, generator=torch.Generator().manual_seed(0)) * 3
    ref = F.interpolate(maps[:, None], size=big, mode="bilinear", align_corners=False)[:, 0]
    # Same weights; only the order of the float32 products/sums may differ: a few ulps.
    torch.testing.assert_close(upsample(maps, big), ref, rtol=0, atol=1e-6 * maps.abs().max())


@pytest.mark.parametrize(("small", "big"), SHAPES)
@pytest.mark.parametrize("relu", [True, False])
def test_hot_pixels_are_exactly_the_dense_pixels_above_the_cut(small, big, relu):
    g = torch.Generator().manual_seed(1)
    maps = torch.randn(30, *small, generator=g) * 2
    maps = maps.relu() if relu else maps
    # Cuts of every kind: 0 (dead units), negative, at a source value (ties), high.
    edge = torch.randn(30, generator=g).abs() * 2
    edge[:3] = 0.0
    edge[3:6] = -0.5
    edge[6] = maps[6].max()
    edge[7] = maps[7].flatten()[0]
    dense = upsample(maps, big).view(30, -1)
    want_p, want_pixel = (dense > edge.view(-1, 1)).nonzero(as_tuple=True)
    p, pixel, value = hot_pixels(maps, edge, big)
    order = torch.argsort(p * dense.shape[1] + pixel)
    assert torch.equal(p[order], want_p) and torch.equal(pixel[order], want_pixel)
    assert torch.equal(value[order], dense[want_p, want_pixel])  # bit-identical values


def test_no_hot_block_gives_empty_results():
    p, pixel, value = hot_pixels(torch.zeros(2, 4, 4), torch.ones(2), (16, 16))
    assert p.numel() == pixel.numel() == value.numel() == 0
