"""Agreement statistics, written here (small, pure) rather than taken from GPL code.

- `fleiss_kappa`: Fleiss' kappa on an items x categories count table. Items may have different
  numbers of raters (each item's observed agreement uses its own n); items with fewer than two
  ratings carry no agreement information and are skipped. With equal n it is Fleiss (1971) exactly.
- `krippendorff_alpha_nominal`: Krippendorff's alpha for nominal data via the coincidence matrix,
  missing values allowed (Krippendorff, "Computing Krippendorff's Alpha-Reliability", 2011).
- `cohen_kappa` and `pairwise_cohen_kappa`: Cohen's kappa between two raters on their common items.
"""

from collections import Counter, defaultdict
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations


def fleiss_kappa(table: Sequence[Sequence[float]]) -> float | None:
    """Fleiss' kappa of `table` (rows = items, columns = categories, cells = rater counts).

    Returns None when it is undefined: no item with two ratings, or every rating in one category.
    """
    rows = [list(map(float, r)) for r in table if sum(r) >= 2]
    if not rows:
        return None
    n_categories = len(rows[0])
    total = sum(sum(r) for r in rows)
    p_j = [sum(r[j] for r in rows) / total for j in range(n_categories)]
    p_e = sum(p * p for p in p_j)
    p_i = []
    for r in rows:
        n = sum(r)
        p_i.append((sum(c * c for c in r) - n) / (n * (n - 1)))
    p_bar = sum(p_i) / len(p_i)
    if p_e >= 1.0:
        return None
    return (p_bar - p_e) / (1.0 - p_e)


def count_table(
    ratings: Iterable[tuple[Hashable, Hashable]], *, categories: Sequence[Hashable] | None = None
) -> tuple[list[list[int]], list[Hashable]]:
    """(item, category) pairs -> (items x categories count table, category order)."""
    per_item: dict[Hashable, Counter] = defaultdict(Counter)
    seen: set[Hashable] = set()
    for item, category in ratings:
        per_item[item][category] += 1
        seen.add(category)
    order = list(categories) if categories is not None else sorted(seen, key=str)
    return [[counts.get(c, 0) for c in order] for counts in per_item.values()], order


def krippendorff_alpha_nominal(units: Iterable[Sequence[Hashable | None]]) -> float | None:
    """Krippendorff's alpha (nominal) of `units`: each unit is the list of values its coders gave.

    None entries are missing values. Units with fewer than two values are not pairable and are
    dropped. Returns None when undefined (fewer than two pairable values, or a single value used).
    """
    coincidence: dict[tuple[Hashable, Hashable], float] = defaultdict(float)
    for unit in units:
        values = [v for v in unit if v is not None]
        m = len(values)
        if m < 2:
            continue
        counts = Counter(values)
        for c, n_c in counts.items():
            for k, n_k in counts.items():
                pairs = n_c * (n_c - 1) if c == k else n_c * n_k
                coincidence[(c, k)] += pairs / (m - 1)
    n_c: dict[Hashable, float] = defaultdict(float)
    for (c, _k), value in coincidence.items():
        n_c[c] += value
    n = sum(n_c.values())
    if n <= 1 or len(n_c) < 2:
        return None
    observed = sum(v for (c, k), v in coincidence.items() if c != k)
    expected = (n * n - sum(v * v for v in n_c.values())) / (n - 1)
    if expected == 0:
        return None
    return 1.0 - observed / expected


def cohen_kappa(first: Sequence[Hashable], second: Sequence[Hashable]) -> float | None:
    """Cohen's kappa between two raters' labels on the same items (same order).

    None when undefined (no items, or both raters used one and the same single category).
    """
    if len(first) != len(second):
        raise ValueError(f"cohen_kappa: {len(first)} labels vs {len(second)}; pass the same items")
    n = len(first)
    if n == 0:
        return None
    observed = sum(a == b for a, b in zip(first, second, strict=True)) / n
    count_a, count_b = Counter(first), Counter(second)
    expected = sum(count_a[c] * count_b.get(c, 0) for c in count_a) / (n * n)
    if expected >= 1.0:
        return None
    return (observed - expected) / (1.0 - expected)


@dataclass(frozen=True)
class PairKappa:
    """Cohen's kappa of one worker pair on the items both answered."""

    worker_a: Hashable
    worker_b: Hashable
    common_items: int
    kappa: float | None
    percent_agreement: float


def pairwise_cohen_kappa(
    labels: Mapping[Hashable, Mapping[Hashable, Hashable]], *, min_common: int = 2
) -> list[PairKappa]:
    """Cohen's kappa for every worker pair with at least `min_common` items in common.

    `labels` maps worker -> {item: label}. Pairs are ordered by worker key.
    """
    result = []
    for a, b in combinations(sorted(labels, key=str), 2):
        common = sorted(set(labels[a]) & set(labels[b]), key=str)
        if len(common) < min_common:
            continue
        first = [labels[a][i] for i in common]
        second = [labels[b][i] for i in common]
        agree = sum(x == y for x, y in zip(first, second, strict=True)) / len(common)
        result.append(PairKappa(a, b, len(common), cohen_kappa(first, second), agree))
    return result


def percent_agreement(units: Iterable[Sequence[Hashable]]) -> float | None:
    """Share of agreeing rater pairs over all items with two or more ratings."""
    agreeing = pairs = 0
    for unit in units:
        counts = Counter(v for v in unit if v is not None)
        m = sum(counts.values())
        if m < 2:
            continue
        agreeing += sum(c * (c - 1) for c in counts.values())
        pairs += m * (m - 1)
    return agreeing / pairs if pairs else None
