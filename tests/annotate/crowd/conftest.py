"""Crowd test fixtures: a finished run with units, ranked images and real tile files in MEDIA_ROOT."""

import io
import itertools

import pytest
from django.core.cache import cache
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from PIL import Image as PILImage

from dissect import models as dm

_RUNS = itertools.count(1)


def _tile_png(shade: int) -> bytes:
    buffer = io.BytesIO()
    PILImage.new("RGB", (24, 24), (shade, 255 - shade, (shade * 7) % 256)).save(buffer, "PNG")
    return buffer.getvalue()


def build_run(*, units: int = 3, tops: int = 14, controls: int = 3, layers=("conv5",)):
    """A done run: `units` units per layer, each with `tops` top and `controls` control tiles on disk."""
    n = next(_RUNS)
    network = dm.Network.objects.create(name=f"crowdnet-{n}", arch="alexnet")
    image_set = dm.ImageSet.objects.create(name=f"crowdimgs-{n}", root="/tmp")
    images = [
        dm.Image.objects.create(image_set=image_set, path=f"{i:04d}.jpg")
        for i in range(tops + controls + 4)
    ]
    run = dm.DissectionRun.objects.create(
        network=network,
        image_set=image_set,
        layers=list(layers),
        status=dm.DissectionRun.Status.DONE,
    )
    for order, name in enumerate(layers):
        layer = dm.Layer.objects.create(run=run, name=name, order=order, unit_count=units)
        for u in range(units):
            unit = dm.Unit.objects.create(layer=layer, index=u)
            for kind, count, offset in (("top", tops, 0), ("control", controls, tops)):
                for rank in range(count):
                    # The file name says "control" on purpose: the task page must never leak it.
                    path = default_storage.save(
                        f"tiles/{run.pk}/{name}/{u}/{kind}-{rank}.png",
                        ContentFile(_tile_png((rank * 20 + offset) % 256)),
                    )
                    dm.UnitImage.objects.create(
                        unit=unit,
                        image=images[offset + rank],
                        kind=kind,
                        rank=rank,
                        score=float(count - rank),
                        tile_path=path,
                    )
    return run


@pytest.fixture
def crowd_run(db):
    return build_run()


@pytest.fixture(autouse=True)
def _fresh_throttle_cache():
    # Throttle history lives in the cache; ids repeat across tests, so start each test clean.
    cache.clear()
    yield
    cache.clear()
