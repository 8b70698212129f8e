"""RunningTopK against brute force; sharding and merge order never change the result."""

import random

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dissect.engine import RunningTopK


def brute_force(scores, ids, k, largest):
    """Per unit: (score, id) pairs sorted best first, ties by lower id."""
    out = []
    for u in range(scores.shape[1]):
        pairs = [(float(scores[n, u]), int(ids[n])) for n in range(scores.shape[0])]
        pairs.sort(key=lambda p: (-p[0] if largest else p[0], p[1]))
        out.append(pairs[:k])
    return out


def as_pairs(topk):
    return [
        list(zip(topk.scores[u].tolist(), topk.image_ids[u].tolist(), strict=True))
        for u in range(topk.num_units)
    ]


@st.composite
def batches(draw):
    n = draw(st.integers(1, 40))
    units = draw(st.integers(1, 5))
    # Few distinct values -> many ties, which is where tie-breaking matters.
    values = draw(st.lists(st.integers(-3, 3), min_size=n * units, max_size=n * units))
    scores = torch.tensor(values, dtype=torch.float32).view(n, units)
    ids = torch.tensor(draw(st.permutations(range(1000, 1000 + n))), dtype=torch.int64)
    k = draw(st.integers(0, 12))
    return scores, ids, k


@settings(max_examples=60, deadline=None)
@given(data=batches(), largest=st.booleans(), seed=st.integers(0, 2**16))
def test_topk_matches_brute_force_for_any_sharding(data, largest, seed):
    scores, ids, k = data
    n, units = scores.shape
    expected = brute_force(scores, ids, k, largest)

    single = RunningTopK(k, units, largest=largest)
    single.add(scores, ids)
    assert as_pairs(single) == expected

    # Random shard boundaries, shards merged in a random order and grouping.
    rng = random.Random(seed)
    order = list(range(n))
    rng.shuffle(order)
    cuts = sorted(rng.sample(range(1, n), min(n - 1, rng.randint(0, 4)))) if n > 1 else []
    shards = []
    for lo, hi in zip([0, *cuts], [*cuts, n], strict=True):
        part = RunningTopK(k, units, largest=largest)
        index = torch.tensor(order[lo:hi])
        part.add(scores[index], ids[index])
        shards.append(part)
    rng.shuffle(shards)
    while len(shards) > 1:
        a = shards.pop(rng.randrange(len(shards)))
        b = shards.pop(rng.randrange(len(shards)))
        shards.append(a.merge(b))
    assert as_pairs(shards[0]) == expected


def test_positions_follow_their_images():
    scores = torch.tensor([[1.0, 5.0], [3.0, 2.0], [2.0, 4.0]])
    ids = torch.tensor([7, 8, 9])
    positions = torch.tensor([[[0, 1], [2, 3]], [[4, 5], [6, 7]], [[8, 9], [10, 11]]])
    top = RunningTopK(2, 2)
    top.add(scores, ids, positions)
    assert top.image_ids.tolist() == [[8, 9], [7, 9]]
    assert top.positions[0].tolist() == [[4, 5], [8, 9]]
    assert top.positions[1].tolist() == [[2, 3], [10, 11]]


def test_nan_scores_rank_last():
    top = RunningTopK(2, 1)
    top.add(torch.tensor([[float("nan")], [1.0], [0.5]]), torch.tensor([1, 2, 3]))
    assert top.image_ids.tolist() == [[2, 3]]


def test_state_dict_round_trip_and_weights_only_load(tmp_path):
    top = RunningTopK(3, 4, largest=False)
    top.add(torch.randn(10, 4), torch.arange(10), torch.randint(0, 5, (10, 4, 2)))
    torch.save(top.state_dict(), tmp_path / "t.pt")
    again = RunningTopK.from_state_dict(torch.load(tmp_path / "t.pt", weights_only=True))
    assert torch.equal(again.scores, top.scores)
    assert torch.equal(again.image_ids, top.image_ids)
    assert torch.equal(again.positions, top.positions)
    assert again.largest is False


def test_merge_refuses_other_shapes():
    import pytest

    with pytest.raises(ValueError, match="different shape"):
        RunningTopK(3, 4).merge(RunningTopK(3, 5))
