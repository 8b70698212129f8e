"""BinnedIoU (threshold-deferred IoU counts) against the two-pass IoUAccumulator and brute force.

Synthetic, tiny tensors. The claims tested: at a threshold on a bin edge (every RunningQuantile
threshold is one) the counts are the *same integers* as thresholding the maps directly; at any
other threshold the reported bounds contain the true IoU; sharding and merge order change
nothing; saved states load back."""

import io

import pytest
import torch

from dissect.engine import BinnedIoU, RunningQuantile
from dissect.engine.iou import edge_values, value_keys
from dissect.netdissect import IoUAccumulator, RunningTopValues, top_k_for_quantile

N_LABELS, SIZE, UNITS = 7, (12, 12), 5


def synthetic(seed: int, n: int = 24):
    """Post-ReLU maps [n, U, 4, 4] (unit 4 dead: all zero) and two label planes [n, 2, 12, 12]
    whose numbers never collide (1-3 and 4-6), like object and part maps."""
    g = torch.Generator().manual_seed(seed)
    acts = torch.relu(
        torch.randn(n, UNITS, 4, 4, generator=g) * torch.arange(1, UNITS + 1).view(1, -1, 1, 1)
    )
    acts[:, 4] = 0
    obj = torch.randint(0, 4, (n, *SIZE), generator=g)
    part = torch.randint(4, 7, (n, *SIZE), generator=g) * (torch.rand(n, *SIZE, generator=g) < 0.4)
    return acts, torch.stack([obj, part], dim=1)


def one_pass(acts, maps, batch=6, **kw) -> tuple[BinnedIoU, RunningQuantile]:
    """Stream batches as extraction does: window from the sketch after the first batch."""
    units = acts.shape[1]
    sketch, acc = RunningQuantile(units), BinnedIoU(units, N_LABELS, **kw)
    for start in range(0, acts.shape[0], batch):
        a, m = acts[start : start + batch], maps[start : start + batch]
        sketch.add(a)
        if not acc.has_window:
            acc.set_window_around(sketch.quantile(0.995))
        acc.add(a, m)
    return acc, sketch


def two_pass(acts, maps, thresholds) -> IoUAccumulator:
    ref = IoUAccumulator(acts.shape[1], N_LABELS)
    ref.add_activations(acts, thresholds, maps)
    return ref


def test_bin_edges_compare_exactly_like_the_floats():
    x = torch.cat([torch.randn(5000) * 10, torch.randn(100) * 1e-30, torch.tensor([0.0, -0.0])])
    for key in (-9000, -1, 0, 1, 127, 8000, 16256):
        edge = edge_values(torch.tensor([key]), 7)
        assert torch.equal(x > edge, value_keys(x, 7) >= key)


@pytest.mark.parametrize("seed", [0, 1])
def test_counts_at_the_sketch_threshold_equal_the_two_pass_counts(seed):
    acts, maps = synthetic(seed)
    acc, sketch = one_pass(acts, maps)
    thresholds = sketch.quantile(0.995)
    counts = acc.counts_at(thresholds)
    ref = two_pass(acts, maps, thresholds)
    assert counts.exact.all()
    # Identical integers, not merely close: the same upsampled floats compared with the same t.
    assert torch.equal(counts.intersection_low, ref.intersection)
    assert torch.equal(counts.intersection_high, ref.intersection)
    assert torch.equal(counts.unit_area_low[:, 0], ref.unit_area)
    assert torch.equal(counts.label_area, ref.label_area)
    torch.testing.assert_close(counts.iou, ref.iou(), rtol=0, atol=1e-6)  # float division only
    assert counts.max_error == 0.0
    assert counts.iou[4].abs().max() == 0  # the dead unit's mask is empty


@pytest.mark.parametrize("shift", [1.0, -10.0])
def test_all_positive_and_all_negative_maps_count_exactly(shift):
    # All-positive windows take the raw-bits key; negative ones the general sign handling.
    acts, maps = synthetic(2)
    acts = acts[:, :4] + shift  # no dead unit: every edge has the same sign
    # Negative values' bins narrow toward zero: a wide window keeps every threshold inside.
    acc, sketch = one_pass(acts, maps, window_bins=256 if shift > 0 else 4096)
    thresholds = sketch.quantile(0.995)
    assert bool(((acc._lo_edge > 0) if shift > 0 else (acc._lo_edge < 0)).all())
    counts = acc.counts_at(thresholds)
    ref = two_pass(acts, maps, thresholds)
    assert counts.exact.all()
    assert torch.equal(counts.intersection_low, ref.intersection)
    assert torch.equal(counts.unit_area_low[:, 0], ref.unit_area)


def test_any_other_threshold_lies_within_the_reported_bounds():
    acts, maps = synthetic(2)
    acc, _ = one_pass(acts, maps)
    # The exact top-0.5 % value (k-th largest) is in general not a bin edge.
    top = RunningTopValues(UNITS, top_k_for_quantile(acts[:, 0].numel()))
    top.add(acts)
    thresholds = top.threshold()
    counts = acc.counts_at(thresholds)
    truth = two_pass(acts, maps, thresholds).iou()
    slack = 1e-6  # float32 rounding of the divisions
    assert (counts.iou_low <= truth + slack).all() and (truth <= counts.iou_high + slack).all()
    assert ((counts.iou - truth).abs() <= counts.max_error + slack).all()
    assert (counts.intersection_low <= counts.intersection_high).all()


def test_threshold_outside_the_window_gives_bounds_not_exact():
    acts, maps = synthetic(3)
    acc, sketch = one_pass(acts, maps)
    far = sketch.quantile(0.995) * 8  # three octaves up: inside the overflow column
    counts = acc.counts_at(far)
    live = torch.arange(UNITS) < 4
    assert not counts.exact[live].any()
    truth = two_pass(acts, maps, far).iou()
    assert (counts.iou_low <= truth + 1e-6).all() and (truth <= counts.iou_high + 1e-6).all()


def _round_trip(acc: BinnedIoU) -> BinnedIoU:
    """Through torch.save / weights_only load, as shard files go."""
    buf = io.BytesIO()
    torch.save(acc.state_dict(), buf)
    buf.seek(0)
    return BinnedIoU.from_state_dict(torch.load(buf, weights_only=True))


def _shard(acts, maps, window=None, batch=3) -> BinnedIoU:
    if window is None:
        return one_pass(acts, maps, batch=batch)[0]
    acc = BinnedIoU(UNITS, N_LABELS)
    acc.set_window(window)
    for start in range(0, acts.shape[0], batch):
        acc.add(acts[start : start + batch], maps[start : start + batch])
    return acc


@pytest.mark.parametrize("broadcast", [True, False])
def test_shards_merge_to_the_unsharded_counts_exactly(broadcast):
    acts, maps = synthetic(4, n=30)
    whole, sketch = one_pass(acts, maps)
    thresholds = sketch.quantile(0.995)
    # Broadcast: every shard uses the window the unsharded pass chose (a run would center it on
    # a sample's thresholds). Otherwise each shard picks its own from its first batch; merging
    # narrows to the common window.
    window = whole.lo if broadcast else None
    cuts = [(0, 4), (4, 5), (5, 17), (17, 30)]
    shards = [_shard(acts[a:b], maps[a:b], window) for a, b in cuts]
    want = whole.counts_at(thresholds)
    for order in ([0, 1, 2, 3], [3, 1, 0, 2]):
        loaded = [_round_trip(shards[i]) for i in order]
        merged = loaded[0].merge(loaded[1]).merge(loaded[2].merge(loaded[3]))  # a merge tree
        got = merged.counts_at(thresholds)
        assert merged.n_images == 30
        assert torch.equal(got.label_area, want.label_area)
        # Wherever the threshold lies in the merged window the counts are the same integers.
        ok = got.exact & want.exact
        assert torch.equal(got.intersection_low[ok], want.intersection_low[ok])
        assert torch.equal(got.unit_area_low[ok], want.unit_area_low[ok])
        assert torch.equal(got.iou[ok], want.iou[ok])
        if broadcast:
            assert ok.all()
        else:
            # One-image shards estimate the threshold badly: their windows may miss it. Then
            # the unit is flagged, and its bounds still hold.
            truth = two_pass(acts, maps, thresholds).iou()
            assert (got.iou_low <= truth + 1e-6).all() and (truth <= got.iou_high + 1e-6).all()


def test_category_denominator_matches_brute_force():
    acts, maps = synthetic(5)
    category = torch.tensor([-1, 0, 0, 0, 1, 1, 1])  # labels 1-3: objects, 4-6: parts
    acc, sketch = one_pass(acts, maps, denominator="category", label_category=category)
    thresholds = sketch.quantile(0.995)
    counts = acc.counts_at(thresholds)
    up = torch.nn.functional.interpolate(acts, size=SIZE, mode="bilinear", align_corners=False)
    masks = up > thresholds.view(1, -1, 1, 1)
    for u in range(UNITS):
        for label in range(1, N_LABELS):
            has = (maps == label).any(1)
            cat = int(category[label])
            image_has_cat = torch.stack(
                [((category[maps[n]] == cat) & (maps[n] > 0)).any() for n in range(len(maps))]
            )
            inter = (masks[:, u] & has).sum()
            area = masks[:, u][image_has_cat].sum()
            iou = float(inter) / max(1, float(area + has.sum() - inter))
            assert counts.iou[u, label] == pytest.approx(iou, abs=1e-6)
            assert counts.unit_area[u, label] == area


def test_images_without_labels_are_skipped_and_other_sizes_resized():
    acts, maps = synthetic(6)
    keep = torch.arange(len(acts)) % 3 != 0
    window = one_pass(acts, maps)[0].lo  # same window for both, so counts are comparable
    masked = BinnedIoU(UNITS, N_LABELS)
    masked.set_window(window)
    masked.add(acts, maps, keep)
    dropped = BinnedIoU(UNITS, N_LABELS)
    dropped.set_window(window)
    dropped.add(acts[keep], maps[keep])
    t = torch.full((UNITS,), 1.0)
    assert torch.equal(masked.counts_at(t).intersection_low, dropped.counts_at(t).intersection_low)
    assert masked.n_images == int(keep.sum())

    small = maps[:, :, ::2, ::2]  # 6x6 maps: resized (nearest) back to 12x12 when allowed
    strict = BinnedIoU(UNITS, N_LABELS, size=SIZE)
    strict.set_window(window)
    with pytest.raises(ValueError, match="resize_labels"):
        strict.add(acts, small)
    lenient = BinnedIoU(UNITS, N_LABELS, size=SIZE, resize_labels=True)
    lenient.set_window(window)
    lenient.add(acts, small)
    manual = BinnedIoU(UNITS, N_LABELS, size=SIZE)
    manual.set_window(window)
    manual.add(acts, small.repeat_interleave(2, 2).repeat_interleave(2, 3))
    assert torch.equal(lenient.intersection, manual.intersection)


def test_rows_keep_the_numbers_behind_each_score():
    acts, maps = synthetic(7)
    acc, sketch = one_pass(acts, maps)
    counts = acc.counts_at(sketch.quantile(0.995))
    rows = list(counts.rows())
    assert rows and all(r["label"] != 0 for r in rows)
    for r in rows:
        union = r["unit_area"] + r["label_area"] - r["intersection"]
        assert r["iou"] == pytest.approx(r["intersection"] / union, abs=1e-6)


def test_merge_refuses_other_settings():
    with pytest.raises(ValueError, match="different settings"):
        BinnedIoU(3, 4).merge(BinnedIoU(3, 5))


def test_vector_layers_count_as_one_cell_maps():
    acts, maps = synthetic(8)
    vec = acts.amax((2, 3))  # [N, U]: e.g. a fully connected layer
    acc, sketch = one_pass(vec, maps)
    thresholds = sketch.quantile(0.995)
    ref = two_pass(vec[:, :, None, None], maps, thresholds)
    assert torch.equal(acc.counts_at(thresholds).intersection_low, ref.intersection)


@pytest.mark.parametrize("dense", [True, False])
def test_saved_counts_round_trip_dense_or_sparse(dense):
    acts, maps = synthetic(9)
    acc, sketch = one_pass(acts, maps)
    if dense:  # every cell nonzero: stored dense
        acc.intersection += 1
    state = acc.state_dict()
    assert ("dense" in state["intersection"]) == dense
    back = _round_trip(acc)
    assert torch.equal(back.intersection, acc.intersection)
    assert torch.equal(
        back.counts_at(sketch.quantile(0.995)).iou, acc.counts_at(sketch.quantile(0.995)).iou
    )
