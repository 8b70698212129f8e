"""RunningQuantile: exact ranks, relative value error within the stated bound, exact merges."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dissect.engine import RunningQuantile


def exact_quantile(values: torch.Tensor, q: float) -> torch.Tensor:
    """Per unit, the value of 1-based rank max(1, ceil(q n)) (values [N, U, ...])."""
    flat = values.transpose(0, 1).reshape(values.shape[1], -1).sort(1).values
    n = flat.shape[1]
    rank = max(1, math.ceil(q * n))
    return flat[:, rank - 1]


def assert_within_bound(sketch, estimate, exact):
    bound = sketch.relative_error * exact.abs()
    small = exact.abs() < sketch.min_value
    ok = torch.where(small, estimate.abs() <= sketch.min_value, (estimate - exact).abs() <= bound)
    assert bool(ok.all()), (estimate, exact)


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 60),
    units=st.integers(1, 4),
    scale=st.sampled_from([1e-3, 1.0, 1e3]),
    q=st.sampled_from([0.0, 0.01, 0.5, 0.9, 0.995, 1.0]),
    bits=st.sampled_from([3, 6, 8]),
    seed=st.integers(0, 2**16),
    relu=st.booleans(),
)
def test_quantile_within_stated_bound(n, units, scale, q, bits, seed, relu):
    g = torch.Generator().manual_seed(seed)
    values = torch.randn(n, units, 3, 2, generator=g) * scale
    if relu:
        values = values.clamp(min=0)  # many exact zeros, as after a ReLU
    sketch = RunningQuantile(units, mantissa_bits=bits)
    sketch.add(values)
    assert_within_bound(sketch, sketch.quantile(q), exact_quantile(values, q))
    assert sketch.count == values[:, 0].numel()


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**16), cuts=st.lists(st.integers(1, 199), max_size=5))
def test_any_sharding_gives_identical_thresholds(seed, cuts):
    g = torch.Generator().manual_seed(seed)
    values = torch.randn(200, 3, 4, 4, generator=g).exp() - 0.3
    whole = RunningQuantile(3)
    whole.add(values)
    bounds = [0, *sorted(set(cuts)), 200]
    parts = []
    for lo, hi in zip(bounds, bounds[1:], strict=False):
        part = RunningQuantile(3)
        part.add(values[lo:hi])
        parts.append(part)
    merged = parts.pop()
    for part in reversed(parts):
        merged = part.merge(merged)
    for q in (0.5, 0.995):
        assert torch.equal(merged.quantile(q), whole.quantile(q))


def test_memory_does_not_grow_with_the_number_of_values():
    sketch = RunningQuantile(8)
    g = torch.Generator().manual_seed(0)
    sketch.add(torch.rand(100, 8, 7, 7, generator=g) * 10)
    bins_after_small = sketch.counts.shape[1]
    for _ in range(10):
        sketch.add(torch.rand(200, 8, 7, 7, generator=g) * 10)
    # Same value range -> same bins, however many values arrive.
    assert sketch.counts.shape[1] <= bins_after_small + 2**sketch.mantissa_bits
    assert sketch.count == 2_100 * 49


def test_nan_is_ignored_and_empty_units_give_nan():
    sketch = RunningQuantile(2)
    assert torch.isnan(sketch.quantile(0.5)).all()
    sketch.add(torch.tensor([[1.0, float("nan")], [2.0, 3.0]]))
    est = sketch.quantile(1.0)
    assert est[0] == pytest.approx(2.0, rel=sketch.relative_error)
    assert est[1] == pytest.approx(3.0, rel=sketch.relative_error)


def test_state_dict_round_trip(tmp_path):
    sketch = RunningQuantile(5)
    sketch.add(torch.randn(50, 5, 3, 3))
    torch.save(sketch.state_dict(), tmp_path / "q.pt")
    again = RunningQuantile.from_state_dict(torch.load(tmp_path / "q.pt", weights_only=True))
    assert torch.equal(again.quantile(0.995), sketch.quantile(0.995))
    assert torch.equal(again.counts, sketch.counts)


def test_merge_refuses_different_settings():
    with pytest.raises(ValueError, match="different settings"):
        RunningQuantile(3).merge(RunningQuantile(3, mantissa_bits=4))


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**16), nan=st.booleans(), signed=st.booleans())
def test_torch_binning_used_off_the_cpu_matches_the_numpy_one(seed, nan, signed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(6, 3, 10, generator=g) * 100 ** torch.rand(6, 3, 10, generator=g)
    x = x if signed else x.abs()
    x[torch.rand(x.shape, generator=g) < 0.2] = 0.0
    if nan:
        x[0, 1, 3] = float("nan")
    x[1, 2, 0] = float("inf")
    sketch = RunningQuantile(3)
    lo_np, counts_np = sketch._histogram_numpy(x)
    lo_t, counts_t = sketch._histogram_torch(x)
    assert lo_np == lo_t and torch.equal(counts_np, counts_t)
    assert int(counts_np.sum()) == x.numel() - int(nan)
