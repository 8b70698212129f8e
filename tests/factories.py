"""factory_boy factories for the data model, shared by every test package."""

import factory

from annotate.crowd import models as am
from dissect import models as dm


class NetworkFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = dm.Network

    name = factory.Sequence(lambda n: f"net-{n}")
    arch = "alexnet"


class ImageSetFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = dm.ImageSet

    name = factory.Sequence(lambda n: f"images-{n}")
    root = "/data/images"


class ImageFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = dm.Image

    image_set = factory.SubFactory(ImageSetFactory)
    path = factory.Sequence(lambda n: f"img/{n:05d}.jpg")
    width = 128
    height = 128


class RunFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = dm.DissectionRun

    network = factory.SubFactory(NetworkFactory)
    image_set = factory.SubFactory(ImageSetFactory)
    layers = ["pool5"]
    status = dm.DissectionRun.Status.DONE


class LayerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = dm.Layer

    run = factory.SubFactory(RunFactory)
    name = factory.Sequence(lambda n: f"layer{n}")
    unit_count = 4


class UnitFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = dm.Unit

    layer = factory.SubFactory(LayerFactory)
    index = factory.Sequence(lambda n: n)


class UnitImageFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = dm.UnitImage

    unit = factory.SubFactory(UnitFactory)
    image = factory.SubFactory(ImageFactory)
    rank = factory.Sequence(lambda n: n)
    score = 1.0


class WorkerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = am.Worker

    pseudonym = factory.Sequence(lambda n: f"w{n:06d}")


class CampaignFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = am.Campaign

    name = factory.Sequence(lambda n: f"campaign {n}")
    run = factory.SubFactory(RunFactory)


class TaskFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = am.Task

    campaign = factory.SubFactory(CampaignFactory)
    unit = factory.SubFactory(UnitFactory)


class AssignmentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = am.Assignment

    task = factory.SubFactory(TaskFactory)
    worker = factory.SubFactory(WorkerFactory)
