"""Streaming per-unit quantile sketch: exact ranks, bounded relative value error.

Every value goes into a logarithmic bin taken straight from its float32 bit pattern: the sign,
the exponent and the top ``mantissa_bits`` mantissa bits (values with ``|x| < min_value`` share a
zero bin). Counts per (unit, bin) are exact integers, so:

* ``add`` and ``merge`` are exactly associative and commutative; any sharding gives *identical*
  thresholds, not merely close ones.
* **Error bound.** Let ``v`` be the exact q-quantile of the n values added, defined as the value
  of 1-based rank ``max(1, ceil(q * n))`` in ascending order. ``quantile(q)`` returns ``v_hat``
  with ``|v_hat - v| <= 2**-(mantissa_bits + 1) * |v|`` when ``|v| >= min_value``, and
  ``|v_hat| <= min_value`` (reported as 0) when ``|v| < min_value``. With the default 6 bits the
  relative error is at most 2**-7 = 0.78 %. There is no rank error at all.
* **Memory** is ``units x bins x 8`` bytes, independent of the number of values: bins span only
  the range of magnitudes actually seen, at ``2**mantissa_bits`` bins per octave (e.g. 64 per
  octave, ~900 bins for values from 0.01 to 100). The worst case (values over the whole float32
  range) is ``2**(9 + mantissa_bits)`` bins.

Infinite values are counted in the extreme bins; NaN values are ignored.
"""

from __future__ import annotations

import torch

__all__ = ["RunningQuantile"]


class RunningQuantile:
    """Per-unit histogram sketch over float32 bit patterns; see the module docstring for bounds.

    ``add(values)`` takes [N, U] or [N, U, *spatial] (every element of unit u's slice counts as
    one value of unit u); ``quantile(q)`` returns float32 [U].
    """

    def __init__(
        self,
        num_units: int,
        *,
        mantissa_bits: int = 6,
        min_value: float = 1e-6,
        device: torch.device | str = "cpu",
    ) -> None:
        if not 0 <= mantissa_bits <= 16:
            raise ValueError(f"mantissa_bits must be in 0..16, got {mantissa_bits}")
        if not min_value > 0:
            raise ValueError(f"min_value must be > 0, got {min_value}")
        self.num_units = int(num_units)
        self.mantissa_bits = int(mantissa_bits)
        self.min_value = float(min_value)
        self._shift = 23 - self.mantissa_bits
        self._base = int(_float_bits(torch.tensor([self.min_value]))[0]) >> self._shift
        # counts[:, i] is the count of key (key_min + i); the key range always contains 0.
        self.key_min = 0
        self.counts = torch.zeros(self.num_units, 1, dtype=torch.int64, device=device)

    # -- keys -------------------------------------------------------------------------------
    @property
    def relative_error(self) -> float:
        """The guaranteed bound on |v_hat - v| / |v| for |v| >= min_value."""
        return 2.0 ** -(self.mantissa_bits + 1)

    @property
    def count(self) -> int:
        """Number of values added per unit (the same for every unit)."""
        return int(self.counts[0].sum()) if self.num_units else 0

    def _keys(self, x: torch.Tensor) -> torch.Tensor:
        """Monotone integer key per value: 0 for |x| < min_value, +-k (k >= 1) otherwise."""
        a = x.abs()
        k = (_float_bits(a) >> self._shift) - self._base + 1
        k = torch.where(a >= self.min_value, k, torch.zeros_like(k))
        return torch.where(x < 0, -k, k).to(torch.int64)

    def _values(self, keys: torch.Tensor) -> torch.Tensor:
        """Representative (bin midpoint) value of each key, float32."""
        mag = keys.abs()
        lo_bits = (mag - 1 + self._base) << self._shift
        hi_bits = (mag + self._base) << self._shift
        lo = _bits_float(lo_bits.to(torch.int32)).to(torch.float64)
        hi = _bits_float(hi_bits.clamp(max=0x7F7FFFFF).to(torch.int32)).to(torch.float64)
        mid = ((lo + hi) / 2).to(torch.float32)
        mid = torch.where(mag == 0, torch.zeros_like(mid), mid)
        return torch.where(keys < 0, -mid, mid)

    def _ensure_range(self, kmin: int, kmax: int) -> None:
        cur_max = self.key_min + self.counts.shape[1] - 1
        new_min, new_max = min(kmin, self.key_min), max(kmax, cur_max)
        if new_min == self.key_min and new_max == cur_max:
            return
        grown = torch.zeros(
            self.num_units, new_max - new_min + 1, dtype=torch.int64, device=self.counts.device
        )
        start = self.key_min - new_min
        grown[:, start : start + self.counts.shape[1]] = self.counts
        self.counts, self.key_min = grown, new_min

    # -- verbs ------------------------------------------------------------------------------
    def add(self, values: torch.Tensor) -> None:
        """Count every value: ``values`` [N, U] or [N, U, ...] (any float dtype, any device)."""
        if values.dim() < 2 or values.shape[1] != self.num_units:
            raise ValueError(
                f"values must be [N, {self.num_units}, ...], got {tuple(values.shape)}"
            )
        if values.numel() == 0:
            return
        x = values.detach().to(device=self.counts.device, dtype=torch.float32)
        x = x.reshape(x.shape[0], self.num_units, -1)
        keys = self._keys(x)
        valid = ~torch.isnan(x)
        kmin, kmax = int(keys.min()), int(keys.max())
        self._ensure_range(kmin, kmax)
        nb = self.counts.shape[1]
        offset = torch.arange(self.num_units, device=x.device).view(1, -1, 1) * nb
        flat = keys - self.key_min + offset
        if not bool(valid.all()):
            flat = flat[valid]
        hist = torch.bincount(flat.reshape(-1), minlength=self.num_units * nb)
        self.counts += hist.view(self.num_units, nb)

    def merge(self, other: RunningQuantile) -> RunningQuantile:
        """Add ``other``'s counts (same units and bin settings) into this sketch; returns self."""
        if (other.num_units, other.mantissa_bits, other.min_value) != (
            self.num_units,
            self.mantissa_bits,
            self.min_value,
        ):
            raise ValueError("cannot merge RunningQuantile sketches with different settings")
        o_max = other.key_min + other.counts.shape[1] - 1
        self._ensure_range(other.key_min, o_max)
        start = other.key_min - self.key_min
        self.counts[:, start : start + other.counts.shape[1]] += other.counts.to(self.counts.device)
        return self

    def quantile(self, q: float | torch.Tensor) -> torch.Tensor:
        """Per-unit q-quantile (float32 [U], CPU); NaN for units with no values."""
        q = float(q)
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"q must be in [0, 1], got {q}")
        counts = self.counts.cpu()
        cum = counts.cumsum(1)
        n = cum[:, -1]
        rank = torch.clamp(torch.ceil(q * n.to(torch.float64)).to(torch.int64), min=1)
        idx = torch.searchsorted(cum, rank.unsqueeze(1)).squeeze(1).clamp(max=cum.shape[1] - 1)
        out = self._values(idx + self.key_min)
        return torch.where(n > 0, out, torch.full_like(out, float("nan")))

    def to(self, device) -> RunningQuantile:
        self.counts = self.counts.to(device)
        return self

    def state_dict(self) -> dict:
        """Plain tensors and numbers; counts stored as int32 when that is lossless."""
        counts = self.counts.cpu()
        if counts.numel() and int(counts.max()) < 2**31:
            counts = counts.to(torch.int32)
        return {
            "num_units": self.num_units,
            "mantissa_bits": self.mantissa_bits,
            "min_value": self.min_value,
            "key_min": self.key_min,
            "counts": counts,
        }

    @classmethod
    def from_state_dict(cls, state: dict) -> RunningQuantile:
        sketch = cls(
            int(state["num_units"]),
            mantissa_bits=int(state["mantissa_bits"]),
            min_value=float(state["min_value"]),
        )
        sketch.key_min = int(state["key_min"])
        sketch.counts = state["counts"].to(torch.int64)
        return sketch


def _float_bits(x: torch.Tensor) -> torch.Tensor:
    """The int32 bit pattern of float32 values (non-negative inputs give monotone ints)."""
    return x.to(torch.float32).contiguous().view(torch.int32)


def _bits_float(b: torch.Tensor) -> torch.Tensor:
    return b.to(torch.int32).contiguous().view(torch.float32)
