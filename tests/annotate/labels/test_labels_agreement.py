"""Agreement statistics against values worked out by hand on small tables."""

import pytest

from annotate.labels.agreement import (
    cohen_kappa,
    count_table,
    fleiss_kappa,
    krippendorff_alpha_nominal,
    pairwise_cohen_kappa,
    percent_agreement,
)


def test_fleiss_kappa_small_table_by_hand():
    # 4 items, 3 raters, 2 categories.
    # P_i = (sum n_ij^2 - 3) / 6: [3,0] -> 1, [2,1] -> 1/3, [0,3] -> 1, [1,2] -> 1/3; mean 2/3.
    # p_j = (3+2+0+1)/12 = 1/2 each -> P_e = 1/2; kappa = (2/3 - 1/2) / (1/2) = 1/3.
    table = [[3, 0], [2, 1], [0, 3], [1, 2]]
    assert fleiss_kappa(table) == pytest.approx(1 / 3)


def test_fleiss_kappa_wikipedia_worked_example():
    # Fleiss' worked example (10 items, 14 raters, 5 categories): kappa = 0.210.
    table = [
        [0, 0, 0, 0, 14],
        [0, 2, 6, 4, 2],
        [0, 0, 3, 5, 6],
        [0, 3, 9, 2, 0],
        [2, 2, 8, 1, 1],
        [7, 7, 0, 0, 0],
        [3, 2, 6, 3, 0],
        [2, 5, 3, 2, 2],
        [6, 5, 2, 1, 0],
        [0, 2, 2, 3, 7],
    ]
    assert fleiss_kappa(table) == pytest.approx(0.20993, abs=1e-5)


def test_fleiss_kappa_edge_cases():
    assert fleiss_kappa([[3, 0], [0, 3]]) == pytest.approx(1.0)
    assert fleiss_kappa([[3, 0], [3, 0]]) is None  # everybody used one category: undefined
    assert fleiss_kappa([[1, 0]]) is None  # one rating per item: no pairs
    # Items with a single rating are skipped, not counted as agreement.
    assert fleiss_kappa([[3, 0], [2, 1], [0, 3], [1, 2], [1, 0]]) == pytest.approx(1 / 3)


def test_count_table_orders_categories():
    table, order = count_table([(1, "b"), (1, "a"), (2, "a")], categories=["a", "b", "c"])
    assert order == ["a", "b", "c"]
    assert table == [[1, 1, 0], [1, 0, 0]]


def test_krippendorff_alpha_nominal_by_hand():
    # Units (coder values): [a,a], [a,b], [b,b], [b,b].
    # Coincidences: o_aa = 2, o_ab = o_ba = 1, o_bb = 4; n_a = 3, n_b = 5, n = 8.
    # alpha = 1 - (n-1) * o_ab+o_ba / (n^2 - n_a^2 - n_b^2) = 1 - 7*2/30 = 8/15.
    assert krippendorff_alpha_nominal([["a", "a"], ["a", "b"], ["b", "b"], ["b", "b"]]) == (
        pytest.approx(8 / 15)
    )


def test_krippendorff_alpha_nominal_with_missing_values():
    # Krippendorff (2011), "Computing Krippendorff's alpha-reliability", nominal example: 0.743.
    n = None
    coders = [
        [1, 2, 3, 3, 2, 1, 4, 1, 2, n, n, n],
        [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, n, 3],
        [n, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, n],
        [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, n],
    ]
    units = list(zip(*coders, strict=True))
    assert krippendorff_alpha_nominal(units) == pytest.approx(0.743, abs=5e-4)


def test_krippendorff_alpha_edge_cases():
    assert krippendorff_alpha_nominal([["x", "x"], ["y", "y"]]) == pytest.approx(1.0)
    assert krippendorff_alpha_nominal([["x", "x"], ["x", "x"]]) is None
    assert krippendorff_alpha_nominal([["x"], ["y", None]]) is None


def test_cohen_kappa_by_hand():
    # 50 items: yes/yes 20, yes/no 5, no/yes 10, no/no 15 -> p_o = 0.7,
    # p_e = 0.5*0.6 + 0.5*0.4 = 0.5.
    first = ["yes"] * 25 + ["no"] * 25
    second = ["yes"] * 20 + ["no"] * 5 + ["yes"] * 10 + ["no"] * 15
    assert cohen_kappa(first, second) == pytest.approx(0.4)
    assert cohen_kappa(["a", "b"], ["a", "b"]) == pytest.approx(1.0)
    assert cohen_kappa(["a", "a"], ["a", "a"]) is None
    with pytest.raises(ValueError, match="same items"):
        cohen_kappa(["a"], ["a", "b"])


def test_pairwise_cohen_kappa_uses_common_items_only():
    labels = {
        "w1": {1: "a", 2: "b", 3: "a", 4: "b"},
        "w2": {1: "a", 2: "b", 3: "b", 9: "a"},
        "w3": {7: "a"},
    }
    pairs = pairwise_cohen_kappa(labels, min_common=2)
    assert [(p.worker_a, p.worker_b, p.common_items) for p in pairs] == [("w1", "w2", 3)]
    # Common items 1,2,3: w1 = a,b,a; w2 = a,b,b. p_o = 2/3, p_e = (2*1 + 1*2)/9 = 4/9.
    assert pairs[0].kappa == pytest.approx((2 / 3 - 4 / 9) / (1 - 4 / 9))
    assert pairs[0].percent_agreement == pytest.approx(2 / 3)


def test_percent_agreement():
    assert percent_agreement([["a", "a", "b"], ["c", "c"], ["z"]]) == pytest.approx(
        (2 + 2) / (6 + 2)
    )
