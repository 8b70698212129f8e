"""Verification samples over the whole activation range (issue 16): known inclusion
probabilities, strata down to the lowest activation, region tiles, label-map coverage and planted
checks on the color world (whose truth is known: unit k fires on the box of color k)."""

import numpy as np
import pytest
from django.core.files.storage import default_storage

from dissect import models as dm
from dissect.broden import read_broden, read_label_map
from dissect.verification_sampling import (
    CHECK_FITS_COVERAGE,
    sample_run_units,
    samples_from_json,
    samples_to_json,
    stratified_sample,
)
from tests.color_world import THRESHOLD, color_network, write_color_world


def test_inverse_inclusion_probabilities_add_up_to_the_population():
    rng = np.random.default_rng(3)
    scores = np.where(rng.random(1000) < 0.4, 0.0, rng.gamma(2.0, 1.0, 1000))  # many zeros
    ids = np.arange(1000) + 7
    drawn, strata = stratified_sample(scores, ids, n=60, seed=1)
    assert len(drawn) == 60 and len({i for i, _, _ in drawn}) == 60
    # Horvitz-Thompson: every stratum's weights sum to its size, so all of them to N.
    assert sum(1 / p for _, p, _ in drawn) == pytest.approx(1000)
    assert sum(s["size"] for s in strata) == 1000
    # The top 0.5 % (5 images) is taken whole; the last band reaches the zero activations.
    assert strata[0]["size"] == strata[0]["drawn"] == 5
    assert strata[-1]["to_rank"] == 1000
    assert min(scores[i] for i, _, b in drawn if b == len(strata) - 1) == 0.0
    # Over-sampling of high activations: a top image is far likelier drawn than a low one.
    probability = {b: p for _, p, b in drawn}
    assert probability[0] == 1.0 and probability[len(strata) - 1] < 0.05
    assert stratified_sample(scores, ids, n=60, seed=1) == (drawn, strata)
    assert stratified_sample(scores, ids, n=60, seed=2)[0] != drawn


def test_a_sample_larger_than_the_population_takes_everyone_once():
    drawn, _ = stratified_sample([3.0, 1.0, 2.0], [1, 2, 3], n=10, seed=0)
    assert sorted(i for i, _, _ in drawn) == [0, 1, 2]
    assert all(p == 1.0 for _, p, _ in drawn)


@pytest.fixture
def color_net():
    return color_network()


@pytest.fixture
def color_run(db, tmp_path):
    color_world = write_color_world(tmp_path / "color-world", 24, seed=0)
    dataset = read_broden(color_world)
    network = dm.Network.objects.create(name="color-net", arch="color-net")
    image_set = dm.ImageSet.objects.create(
        name="color-world", root=str(color_world / "images"), labels_dir=str(color_world)
    )
    for row in dataset.rows:
        dm.Image.objects.create(image_set=image_set, path=row.image)
    run = dm.DissectionRun.objects.create(
        network=network, image_set=image_set, layers=["conv"], status=dm.DissectionRun.Status.DONE
    )
    layer = dm.Layer.objects.create(run=run, name="conv", unit_count=4)
    units = [dm.Unit.objects.create(layer=layer, index=k, threshold=THRESHOLD) for k in range(4)]
    return run, units, dataset


def test_run_units_get_tiles_coverage_and_planted_checks(color_run, color_net):
    run, units, dataset = color_run
    red = units[0]
    samples = sample_run_units(
        run_id=run.pk, unit_concepts={red.pk: "Red  box"}, n=10, seed=0, checks=2, net=color_net
    )
    sample = samples[red.pk]
    assert sample.population == 24 and sample.label_maps
    assert len(sample.items) == 10
    assert sum(1 / i.inclusion_probability for i in sample.items) == pytest.approx(24)
    paths = dict(dm.Image.objects.values_list("id", "path"))
    rows = dataset.row_by_image()
    for item in sample.items + sample.checks:
        assert default_storage.exists(item.tile_path)
        red_pixels = (
            read_label_map(dataset.images_dir / rows[paths[item.image_id]].map_files[0]) == 1
        )
        # The unit is silent exactly where its max stays at or below its threshold.
        assert item.silent == (item.activation <= THRESHOLD)
        if item.silent:
            # The region is the whole image: coverage is the red box's share of the image.
            assert item.coverage == pytest.approx(red_pixels.mean(), abs=0.02)
        if item.check == "fits":
            assert item.coverage >= CHECK_FITS_COVERAGE and red_pixels.any()
        if item.check == "not":
            assert not red_pixels.any()
    assert {c.check for c in sample.checks} == {"fits", "not"}
    assert not {c.image_id for c in sample.checks} & {i.image_id for i in sample.items}
    assert all(c.inclusion_probability == 0 for c in sample.checks)
    # Where the red unit fires, its region shows red: the maps say the concept is present.
    firing = [i for i in sample.items if not i.silent]
    assert firing and all(i.concept_present for i in firing)
    # The stored record reads back as it was.
    assert samples_from_json(samples_to_json(samples)) == samples


def test_a_concept_the_label_maps_do_not_name_gets_no_checks(color_run, color_net):
    run, units, _ = color_run
    samples = sample_run_units(
        run_id=run.pk, unit_concepts={units[1].pk: "zebra"}, n=6, seed=0, net=color_net
    )
    sample = samples[units[1].pk]
    assert not sample.label_maps and sample.checks == []
    assert all(i.coverage is None for i in sample.items)


def test_the_celery_task_stores_the_samples_it_draws(color_run, color_net, monkeypatch):
    from dissect.tasks import verification_sample

    run, units, _ = color_run
    monkeypatch.setattr("dissect.services.networks.network_load", lambda network: color_net)
    name = verification_sample.apply(args=(run.pk, {str(units[2].pk): "blue box"}, 6, 3)).get()
    with default_storage.open(name, "rb") as handle:
        stored = samples_from_json(handle.read())
    direct = sample_run_units(
        run_id=run.pk, unit_concepts={units[2].pk: "blue box"}, n=6, seed=3, net=color_net
    )
    assert stored == direct  # idempotent: the same arguments draw the same sample and tiles
