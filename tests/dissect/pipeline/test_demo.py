"""The README demo's dissection half: demo world -> image set -> both demo networks dissected."""

import pytest
from django.core.files.storage import default_storage

from dissect.models import DissectionRun, ImageSet, Network, UnitImage


def _require_demo_networks() -> None:
    """The demo checkpoints are committed: failing to load them fails the test (never a skip)."""
    from dissect.demo.networks import DemoNetworkError, load_demo_network

    for name in ("demo-places", "demo-objects"):
        try:
            load_demo_network(name)
        except (DemoNetworkError, FileNotFoundError, KeyError, ValueError) as exc:
            pytest.fail(f"the committed {name} checkpoint does not load: {exc}")


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_demo_runs_are_created_end_to_end_and_reused(settings, tmp_path):
    _require_demo_networks()
    from dissect.services import demo_runs_create

    settings.DATA_DIR = tmp_path / "data"
    runs = demo_runs_create(n_images=24, top_k=3)
    assert [r.network.name for r in runs] == ["demo-places", "demo-objects"]
    for run in runs:
        assert run.status == DissectionRun.Status.DONE, run.error
        assert run.layers == ["conv5", "pool5"]
        assert list(run.layer_set.values_list("name", flat=True)) == ["conv5", "pool5"]
        tiles = UnitImage.objects.filter(unit__layer__run=run)
        assert tiles.exists() and all(default_storage.exists(t.tile_path) for t in tiles[:50])
    image_set = ImageSet.objects.get(name="demo-world")
    assert image_set.image_count == 24 and image_set.bad_count == 0
    assert image_set.images.exclude(scene_label="").count() == 24  # scene labels from index.csv

    again = demo_runs_create(n_images=24, top_k=3)
    assert [r.pk for r in again] == [r.pk for r in runs]
    assert DissectionRun.objects.count() == 2 and Network.objects.count() == 2
