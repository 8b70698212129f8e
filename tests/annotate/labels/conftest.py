"""Fixtures for the aggregation/report tests: the authors' released ICLR'15 annotation files."""

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def iclr15_paths() -> list[Path]:
    """The released files packaged with CrowdDissect (annotate/labels/data/iclr15/)."""
    from annotate.labels.iclr15 import packaged_paths

    paths = packaged_paths()
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        pytest.fail(f"packaged ICLR'15 files missing: {missing}")
    return paths


@pytest.fixture(scope="session")
def iclr15_files(iclr15_paths):
    from annotate.labels.iclr15 import read_iclr15

    return [read_iclr15(p) for p in iclr15_paths]


@pytest.fixture
def crowd_world(db):
    """A tiny labeled world: make(answers) builds a network with one run, one layer 'conv5' of
    `units` units (each with `tiles` top tiles and one control tile), one campaign, and the given
    answers: (unit index, worker, text, category, precision, flagged tile ranks, status)."""
    from annotate.crowd.models import Answer, Assignment, Campaign, Task, Worker
    from dissect.models import DissectionRun, Image, ImageSet, Layer, Network, Unit, UnitImage

    def make(answers, *, units: int = 3, tiles: int = 4, name: str = "tiny-net"):
        network = Network.objects.create(
            name=name, arch="alexnet", weights_sha256="ab" * 32, training_data="Tiny"
        )
        image_set = ImageSet.objects.create(
            name=f"{name}-images", root="/nowhere", manifest_sha256="cd" * 32, image_count=10
        )
        images = [
            Image.objects.create(image_set=image_set, path=f"img{i}.jpg") for i in range(tiles + 1)
        ]
        run = DissectionRun.objects.create(
            network=network,
            image_set=image_set,
            layers=["conv5"],
            status="done",
            seed=7,
            parameters={"top_k": tiles},
        )
        layer = Layer.objects.create(run=run, name="conv5", order=0, unit_count=units)
        campaign = Campaign.objects.create(name=f"{name} campaign", run=run, layers=["conv5"])
        unit_rows, tasks, tile_ids = [], [], []
        for u in range(units):
            unit = Unit.objects.create(layer=layer, index=u)
            top = [
                UnitImage.objects.create(unit=unit, image=images[r], rank=r, score=1.0 - r / 10)
                for r in range(tiles)
            ]
            control = UnitImage.objects.create(
                unit=unit, image=images[tiles], kind="control", rank=0, score=0.0
            )
            order = [t.pk for t in top] + [control.pk]
            tasks.append(Task.objects.create(campaign=campaign, unit=unit, tile_order=order))
            unit_rows.append(unit)
            tile_ids.append([t.pk for t in top])
        workers: dict[str, Worker] = {}
        for unit_index, worker, text, category, precision, flagged, status in answers:
            if worker not in workers:
                workers[worker] = Worker.objects.create(pseudonym=f"{name}-{worker}")
            assignment = Assignment.objects.create(
                task=tasks[unit_index], worker=workers[worker], status=status, active_seconds=12.5
            )
            Answer.objects.create(
                assignment=assignment,
                concept_text=text,
                category=category,
                precision=precision,
                flagged_tiles=[tile_ids[unit_index][r] for r in flagged],
            )
        return {
            "network": network,
            "run": run,
            "units": unit_rows,
            "campaign": campaign,
            "workers": workers,
            "tasks": tasks,
        }

    return make
