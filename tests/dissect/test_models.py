"""Constraints of the dissection data model hold in the database, not only in code."""

import pytest
from django.db import IntegrityError, transaction

from dissect.models import Image
from tests.factories import ImageFactory, LayerFactory, UnitFactory, UnitImageFactory

pytestmark = pytest.mark.django_db


def test_one_unit_image_per_rank_and_kind():
    first = UnitImageFactory(rank=0)
    UnitImageFactory(unit=first.unit, rank=0, kind="control")  # same rank, other kind: fine
    with pytest.raises(IntegrityError), transaction.atomic():
        UnitImageFactory(unit=first.unit, rank=0)


def test_an_image_appears_once_in_a_units_top_list():
    first = UnitImageFactory(rank=0)
    with pytest.raises(IntegrityError), transaction.atomic():
        UnitImageFactory(unit=first.unit, image=first.image, rank=1)


def test_unit_index_is_unique_per_layer():
    unit = UnitFactory(index=3)
    UnitFactory(index=3)  # another layer
    with pytest.raises(IntegrityError), transaction.atomic():
        UnitFactory(layer=unit.layer, index=3)


def test_layer_names_are_unique_per_run():
    layer = LayerFactory(name="pool5")
    with pytest.raises(IntegrityError), transaction.atomic():
        LayerFactory(run=layer.run, name="pool5")


def test_a_bad_image_must_say_why():
    with pytest.raises(IntegrityError), transaction.atomic():
        ImageFactory(status=Image.Status.BAD, reason="")
    assert ImageFactory(status=Image.Status.BAD, reason="zero-byte file").reason


def test_image_paths_are_unique_per_set():
    image = ImageFactory(path="a.jpg")
    with pytest.raises(IntegrityError), transaction.atomic():
        ImageFactory(image_set=image.image_set, path="a.jpg")
