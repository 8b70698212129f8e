"""Sharded and single-pass runs give identical top-K lists, through the real services."""

import pytest

from dissect.models import DissectionRun, Shard, UnitImage
from dissect.services import (
    load_shard_stats,
    merge_stats,
    run_cancel,
    run_create,
    run_merge,
    shard_extract,
)

from .conftest import SMALL


def _lists(run):
    return list(
        UnitImage.objects.filter(unit__layer__run=run)
        .order_by("unit__layer__name", "unit__index", "kind", "rank")
        .values_list("unit__layer__name", "unit__index", "kind", "rank", "image_id", "score",
                     "argmax_y", "argmax_x")
    )  # fmt: skip


def _dissect(network, image_set, shard_size, order):
    run = run_create(
        network=network, image_set=image_set, layers=[SMALL, "features.4.squeeze_activation"], top_k=5,
        controls=2, shard_size=shard_size,
    )  # fmt: skip
    indexes = list(run.shards.values_list("index", flat=True))
    for index in order(indexes):
        shard_extract(run_id=run.pk, shard_index=index)
    run_merge(run_id=run.pk)
    return run


@pytest.mark.django_db
def test_shard_sizes_and_orders_give_identical_unit_lists(tiny_network, image_set):
    single = _dissect(tiny_network, image_set, 100, list)
    forward = _dissect(tiny_network, image_set, 5, list)
    backward = _dissect(tiny_network, image_set, 3, lambda ids: ids[::-1])
    assert single.shards.count() == 1 and backward.shards.count() == 4

    expected = _lists(single)
    assert sum(1 for row in expected if row[2] == "top") == (16 + 16) * 5
    # Controls are the lowest scores; a dead unit's control can tie with its top and is dropped.
    assert 0 < sum(1 for row in expected if row[2] == "control") <= (16 + 16) * 2
    assert _lists(forward) == expected
    assert _lists(backward) == expected
    thresholds = [
        list(
            r.layer_set.values_list("units__index", "units__threshold").order_by(
                "name", "units__index"
            )
        )
        for r in (single, forward, backward)
    ]
    assert thresholds[0] == thresholds[1] == thresholds[2]


@pytest.mark.django_db
def test_merge_is_associative_over_stored_shard_files(tiny_network, image_set):
    run = _dissect(tiny_network, image_set, 4, list)
    paths = list(run.shards.order_by("index").values_list("state_path", flat=True))
    a = merge_stats(load_shard_stats(p) for p in paths)
    b = merge_stats(load_shard_stats(p) for p in reversed(paths))
    for alias in a:
        assert a[alias].top.image_ids.tolist() == b[alias].top.image_ids.tolist()
        assert a[alias].n_images == b[alias].n_images == 12


@pytest.mark.django_db
def test_rerun_shard_overwrites_its_own_file(tiny_network, image_set):
    run = run_create(network=tiny_network, image_set=image_set, layers=[SMALL], top_k=3,
                     shard_size=6)  # fmt: skip
    shard_extract(run_id=run.pk, shard_index=1)
    shard = run.shards.get(index=1)
    from dissect.artifacts import artifact_read, artifact_storage

    first = artifact_read(shard.state_path)
    shard_extract(run_id=run.pk, shard_index=1)
    shard.refresh_from_db()
    assert shard.status == Shard.Status.DONE
    assert artifact_read(shard.state_path) == first
    assert artifact_storage().listdir(str(run.pk)) == ([], ["shard-00001.pt"])


@pytest.mark.django_db
def test_cancelled_run_does_no_more_work(tiny_network, image_set):
    run = run_create(network=tiny_network, image_set=image_set, layers=[SMALL], top_k=3,
                     shard_size=6)  # fmt: skip
    run_cancel(run=run)
    shard_extract(run_id=run.pk, shard_index=0)
    run.refresh_from_db()
    assert run.status == DissectionRun.Status.CANCELLED
    assert not run.shards.filter(status=Shard.Status.DONE).exists()


@pytest.mark.django_db
def test_a_file_broken_after_scanning_is_marked_bad_and_shifts_no_shard(
    tiny_network, image_set, settings
):
    from pathlib import Path

    from dissect.models import Image

    victim = image_set.images.order_by("id")[1]
    file = Path(image_set.root) / victim.path
    file.write_bytes(file.read_bytes()[:100])  # truncated after the scan said it was fine
    run = run_create(network=tiny_network, image_set=image_set, layers=[SMALL], top_k=3,
                     shard_size=4)  # fmt: skip
    for index in range(3):
        shard_extract(run_id=run.pk, shard_index=index)
    run_merge(run_id=run.pk)
    victim.refresh_from_db()
    assert victim.status == Image.Status.BAD and victim.path in victim.reason
    from dissect.artifacts import merged_state_name

    merged = load_shard_stats(merged_state_name(run.pk))
    assert merged[SMALL].n_images == 11  # every other image counted exactly once
    assert not UnitImage.objects.filter(unit__layer__run=run, image=victim).exists()


@pytest.mark.django_db
def test_tasks_of_an_earlier_start_do_nothing(tiny_network, image_set):
    run = run_create(network=tiny_network, image_set=image_set, layers=[SMALL], top_k=3,
                     shard_size=6)  # fmt: skip
    run.parameters = {**run.parameters, "attempt": 2}  # started, cancelled, resumed
    run.save()
    shard_extract(run_id=run.pk, shard_index=0, attempt=1)  # still queued from attempt 1
    assert not run.shards.filter(status=Shard.Status.DONE).exists()
    shard_extract(run_id=run.pk, shard_index=0, attempt=2)
    assert run.shards.filter(status=Shard.Status.DONE).count() == 1
