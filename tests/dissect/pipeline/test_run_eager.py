"""A whole run through the real services with eager Celery: shards -> merge -> render."""

from pathlib import Path

import pytest
from django.core.files.storage import default_storage

from dissect.models import DissectionRun, Layer, Shard, Unit, UnitImage
from dissect.services import run_create, run_start

from .conftest import SMALL, run_eagerly


@pytest.mark.django_db
def test_run_end_to_end_writes_rows_states_and_tiles(
    tiny_network, image_set, django_capture_on_commit_callbacks, settings
):
    run = run_create(
        network=tiny_network, image_set=image_set, layers=[SMALL], top_k=4, controls=1,
        shard_size=5, tile_px=24,
    )  # fmt: skip
    assert run.shards.count() == 3  # 12 images in shards of 5
    run_eagerly(run_start, django_capture_on_commit_callbacks, run=run)
    run.refresh_from_db()

    assert run.status == DissectionRun.Status.DONE, run.error
    assert run.progress["extract"] == {"done": 12, "total": 12}
    assert run.progress["render"]["done"] == run.progress["render"]["total"] > 0
    assert set(run.timings) >= {"extract", "merge", "render"}
    assert run.code_version and run.device == "cpu"
    # Each shard left its own partial-state file under RUNS_DIR/<run id>/ (the local artifacts).
    runs_dir = Path(settings.CROWDDISSECT["RUNS_DIR"]) / str(run.pk)
    for shard in run.shards.all():
        assert shard.status == Shard.Status.DONE
        assert shard.state_path == f"{run.pk}/shard-{shard.index:05d}.pt"
        assert (runs_dir / f"shard-{shard.index:05d}.pt").is_file()

    layer = Layer.objects.get(run=run, name=SMALL)
    assert layer.unit_count == 16 and layer.output_shape == [16, 15, 15]
    units = Unit.objects.filter(layer=layer)
    assert units.count() == 16
    unit = units.get(index=0)
    tops = list(unit.unit_images.filter(kind=UnitImage.Kind.TOP).order_by("rank"))
    assert [t.rank for t in tops] == [0, 1, 2, 3]
    scores = [t.score for t in tops]
    assert scores == sorted(scores, reverse=True)
    assert unit.top_score == pytest.approx(scores[0])
    assert unit.threshold is not None
    controls = list(unit.unit_images.filter(kind=UnitImage.Kind.CONTROL))
    assert len(controls) == 1 and controls[0].score <= scores[-1]
    # Every listed image has a tile in media storage, and every unit a montage.
    for unit_image in UnitImage.objects.filter(unit__layer=layer):
        assert unit_image.tile_path and default_storage.exists(unit_image.tile_path)
    assert all(default_storage.exists(u.montage_path) for u in units)


@pytest.mark.django_db
def test_receptive_field_stage_stores_sizes_and_maps(
    tiny_network, image_set, django_capture_on_commit_callbacks
):
    run = run_create(
        network=tiny_network, image_set=image_set, layers=[SMALL], top_k=2, controls=0,
        shard_size=12, tile_px=20, receptive_field=True, segmentation="rf-disk",
        options={"rf_images": 1, "rf_patch_px": 11, "rf_stride_px": 16},
    )  # fmt: skip
    run_eagerly(run_start, django_capture_on_commit_callbacks, run=run)
    run.refresh_from_db()
    assert run.status == DissectionRun.Status.DONE, run.error
    layer = run.layer_set.get()
    assert layer.empirical_rf_mean_px is not None and layer.empirical_rf_std_px is not None
    measured = Unit.objects.filter(layer=layer, rf_size_px__isnull=False)
    assert measured.exists()
    assert all(default_storage.exists(u.rf_map_path) for u in measured.exclude(rf_map_path=""))
    assert f"receptive_field {SMALL}" in run.progress


@pytest.mark.django_db
def test_a_failing_stage_marks_the_run_failed_with_the_reason(
    tiny_network, image_set, django_capture_on_commit_callbacks, tmp_path
):
    run = run_create(network=tiny_network, image_set=image_set, layers=[SMALL], top_k=2,
                     shard_size=12)  # fmt: skip
    tiny_network.checkpoint_path = str(tmp_path / "moved-away.pt")
    tiny_network.save()
    with pytest.raises(Exception, match="moved-away.pt"):
        run_eagerly(run_start, django_capture_on_commit_callbacks, run=run)
    run.refresh_from_db()
    assert run.status == DissectionRun.Status.FAILED
    assert "moved-away.pt" in run.error


@pytest.mark.parametrize(
    "options, message",
    [
        ({"bogus": 1}, "bogus: unknown parameter; use quantile, montage_tile_px"),
        ({"quantile": 0.0}, "quantile: give a number between 0 and 1, exclusive."),
        ({"quantile": "high"}, "quantile: give a number between 0 and 1, exclusive."),
        ({"quantile": float("nan")}, "quantile: give a number between 0 and 1, exclusive."),
        ({"rf_stride_px": 2.5}, "rf_stride_px: give a whole number from 1 to 1024."),
        ({"rf_images": True}, "rf_images: give a whole number from 1 to 100."),
        ({"montage_tile_px": 8}, "montage_tile_px: give a whole number from 16 to 512."),
        ({"auto_labels": "yes"}, "auto_labels: give true or false."),
    ],
)
def test_bad_advanced_options_are_named(options, message):
    from dissect.services import PipelineError, options_clean

    with pytest.raises(PipelineError) as error:
        options_clean(options)
    assert message in str(error.value)


def test_advanced_options_are_converted_to_their_types():
    from dissect.services import options_clean

    cleaned = options_clean({"rf_patch_px": 5.0, "quantile": 1 - 1e-3, "auto_labels": True})
    assert cleaned == {"rf_patch_px": 5, "quantile": 0.999, "auto_labels": True}
    assert type(cleaned["rf_patch_px"]) is int


@pytest.mark.django_db
def test_render_parts_split_the_tiles_and_match_one_part(tiny_network, image_set):
    """Two render parts write disjoint tile sets whose union is exactly what one part writes
    (content-addressed, so the same paths), and the stage's counter reaches its total once."""
    from dissect import services

    run = run_create(network=tiny_network, image_set=image_set, layers=[SMALL], top_k=3,
                     controls=1, shard_size=6, tile_px=20)  # fmt: skip
    assert services.render_parts(run) == 2
    run_start(run=run)  # marks it running; the on-commit enqueue never fires in this test
    for shard in range(2):
        services.shard_extract(run_id=run.pk, shard_index=shard)
    services.run_merge(run_id=run.pk)
    rows = UnitImage.objects.filter(unit__layer__run=run)

    def tiles() -> dict:  # by a key that survives the merge rewriting the rows
        keys = rows.values_list("unit__index", "kind", "rank", "tile_path")
        return {(unit, kind, rank): path for unit, kind, rank, path in keys if path}

    whole = services.run_render(run_id=run.pk)
    single = tiles()
    services.run_merge(run_id=run.pk)  # fresh rows and counter, as a resumed run would get
    assert tiles() == {}
    first = services.run_render(run_id=run.pk, part=0, parts=2)
    after_first = tiles()
    second = services.run_render(run_id=run.pk, part=1, parts=2)

    assert 0 < first < whole and first + second == whole == len(single)
    assert 0 < len(after_first) < len(single)
    assert tiles() == single
    run.refresh_from_db()
    assert run.progress["render"] == {"done": whole, "total": whole}
    services.run_montages(run_id=run.pk)
    assert all(default_storage.exists(u.montage_path) for u in Unit.objects.filter(layer__run=run))
