"""Single-pass extraction against activations captured directly; shard/merge equivalence."""

import torch

from dissect.engine import UnitStats, activation_maps, extract_unit_stats, spatial_max
from dissect.networks import capture_outputs, resolve_layers


def make_batches(images, ids, batch_size):
    for start in range(0, len(ids), batch_size):
        yield ids[start : start + batch_size], images[start : start + batch_size]


def test_spatial_max_gives_value_and_first_location():
    maps = torch.zeros(1, 2, 3, 4)
    maps[0, 0, 1, 2] = 5.0
    maps[0, 1, 2, 3] = 1.0
    maps[0, 1, 0, 1] = 1.0  # tie: first in row-major order wins
    scores, positions = spatial_max(maps)
    assert scores.tolist() == [[5.0, 1.0]]
    assert positions.tolist() == [[[1, 2], [0, 1]]]


def test_extraction_matches_brute_force(net):
    g = torch.Generator().manual_seed(1)
    images = torch.randn(30, 3, 32, 32, generator=g)
    ids = torch.arange(100, 130)
    stats = extract_unit_stats(
        net, ["conv1", "conv2"], make_batches(images, ids, 7), top_k=5, controls=3, device="cpu"
    )
    assert set(stats) == {"conv1", "conv2"}
    with capture_outputs(resolve_layers(net, ["conv1", "conv2"])) as captured:
        with torch.inference_mode():
            net.model(images)
        maps = dict(captured)
    for alias, s in stats.items():
        amap = maps[alias]
        assert s.n_images == 30
        assert s.map_shape == tuple(amap.shape[2:])
        assert (amap >= 0).all()  # post-ReLU, even though that ReLU is in-place
        scores = amap.flatten(2).max(2).values  # [N, U]
        for u in range(s.num_units):
            order = sorted(range(30), key=lambda n, u=u: (-float(scores[n, u]), int(ids[n])))
            assert s.top.image_ids[u].tolist() == [int(ids[n]) for n in order[:5]]
            low = sorted(range(30), key=lambda n, u=u: (float(scores[n, u]), int(ids[n])))
            assert s.controls.image_ids[u].tolist() == [int(ids[n]) for n in low[:3]]
            best = order[0]
            r, c = s.top.positions[u, 0].tolist()
            assert amap[best, u, r, c] == scores[best, u]
        flat = amap.transpose(0, 1).reshape(s.num_units, -1).sort(1).values
        exact = flat[:, int(torch.ceil(torch.tensor(0.995 * flat.shape[1]))) - 1]
        est = s.threshold(0.995)
        assert ((est - exact).abs() <= s.quantile.relative_error * exact.abs() + 1e-6).all()


def test_shards_of_any_size_merge_to_the_single_pass_result(net, tmp_path):
    g = torch.Generator().manual_seed(2)
    images = torch.randn(24, 3, 32, 32, generator=g)
    ids = torch.randperm(24, generator=g) + 1
    # Batches of one image: conv kernels may round differently for different batch sizes, and
    # this test is about the bookkeeping, which must then be bit-identical.
    whole = extract_unit_stats(net, ["conv2"], make_batches(images, ids, 1), top_k=6)["conv2"]

    paths = []
    for i, (lo, hi) in enumerate([(0, 5), (5, 6), (6, 17), (17, 24)]):
        shard = extract_unit_stats(
            net, ["conv2"], make_batches(images[lo:hi], ids[lo:hi], 1), top_k=6
        )["conv2"]
        paths.append(tmp_path / f"shard{i}.pt")
        shard.save(paths[-1])
    # Merge in a different order than the shards were made, from files loaded weights_only.
    merged = UnitStats.load(paths[2])
    for p in (paths[0], paths[3], paths[1]):
        merged.merge(UnitStats.load(p))
    assert merged.n_images == whole.n_images == 24
    assert torch.equal(merged.top.image_ids, whole.top.image_ids)
    assert torch.equal(merged.top.scores, whole.top.scores)
    assert torch.equal(merged.top.positions, whole.top.positions)
    assert torch.equal(merged.controls.image_ids, whole.controls.image_ids)
    assert torch.equal(merged.threshold(0.995), whole.threshold(0.995))


def test_empty_shard_still_has_stats_that_merge(net):
    empty = extract_unit_stats(net, ["pool1"], iter(()), top_k=4)["pool1"]
    assert empty.n_images == 0 and empty.map_shape == (16, 16) and empty.num_units == 6
    full = extract_unit_stats(
        net, ["pool1"], [(torch.arange(3), torch.randn(3, 3, 32, 32))], top_k=4
    )
    merged = empty.merge(full["pool1"])
    assert merged.n_images == 3 and merged.top.image_ids.shape == (6, 3)


def test_progress_reports_images_done(net):
    seen = []
    batches = make_batches(torch.randn(10, 3, 32, 32), torch.arange(10), 4)
    extract_unit_stats(net, ["conv1"], batches, progress=lambda d, t: seen.append((d, t)), total=10)
    assert seen == [(4, 10), (8, 10), (10, 10)]


def test_activation_maps_for_chosen_units(net):
    images = torch.randn(5, 3, 32, 32)
    maps = activation_maps(net, "conv2", images, units=[3, 1], batch_size=2, device="cpu")
    with capture_outputs(resolve_layers(net, ["conv2"])) as captured:
        with torch.inference_mode():
            net.model(images)
    assert maps.shape == (5, 2, 16, 16)
    # Batches of 2 vs 5 take different BLAS kernels, which sum in another order: fp32 results differ
    # by a few ulps (3.6e-7 seen on one CPU), so compare with a tolerance well above that and far
    # below any real error (activations here are of order 1).
    torch.testing.assert_close(maps, captured["conv2"][:, [3, 1]], rtol=1e-5, atol=1e-5)


def test_hooks_are_removed_after_extraction(net):
    extract_unit_stats(net, ["conv1", "conv2"], [(torch.arange(2), torch.randn(2, 3, 32, 32))])
    assert all(not m._forward_hooks for m in net.model.modules())


def test_reduced_precision_and_channels_last_give_the_same_ranking(net):
    g = torch.Generator().manual_seed(5)
    images, ids = torch.randn(12, 3, 32, 32, generator=g), torch.arange(12)
    exact = extract_unit_stats(net, ["conv2"], [(ids, images)], top_k=3, device="cpu")["conv2"]
    fast = extract_unit_stats(
        net, ["conv2"], [(ids, images)], top_k=3, device="cpu",
        dtype=torch.bfloat16, channels_last=True,
    )["conv2"]  # fmt: skip
    assert fast.top.scores.dtype == torch.float32  # statistics stay float32
    assert torch.allclose(fast.top.scores[:, 0], exact.top.scores[:, 0], rtol=0.05, atol=0.05)
    assert (fast.top.image_ids[:, 0] == exact.top.image_ids[:, 0]).float().mean() >= 0.8
