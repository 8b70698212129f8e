"""The merge stage counts shard states read and layers written: the run page and the status JSON
say so, so a 2-shard run's "3 / 3" is not read as 3 shards."""

import pytest
from django.urls import reverse

from dissect.selectors import run_status
from dissect.services import run_create, run_start

from .conftest import SMALL, run_eagerly


@pytest.mark.django_db
def test_merge_progress_names_what_it_counts(
    tiny_network, image_set, django_capture_on_commit_callbacks, client, make_user
):
    run = run_create(
        network=tiny_network, image_set=image_set, layers=[SMALL], top_k=4, controls=1,
        shard_size=6, tile_px=20,
    )  # fmt: skip
    assert run.shards.count() == 2  # 12 images in shards of 6
    run_eagerly(run_start, django_capture_on_commit_callbacks, run=run)
    run.refresh_from_db()
    merge = next(s for s in run_status(run=run)["stages"] if s["stage"] == "merge")
    assert (merge["done"], merge["total"]) == (3, 3)
    assert merge["counting"] == "2 shard(s) read + 1 layer(s) written"
    client.force_login(make_user("researcher"))
    page = client.get(reverse("dissect:run-detail", args=[run.pk])).content.decode()
    assert "(2 shard(s) read + 1 layer(s) written)" in page
    status = client.get(reverse("dissect:run-status", args=[run.pk])).json()
    assert any(s["counting"] == merge["counting"] for s in status["stages"])
