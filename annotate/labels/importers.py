"""Import the ICLR'15 authors' released crowd answers as a network, a run, a campaign and answers."""

from dataclasses import dataclass
from pathlib import Path

from django.db import transaction
from django.utils import timezone

from annotate.labels.aggregation import (
    CONCEPT_MAX_LENGTH,
    Progress,
    concepts_get_or_create,
    run_labels_recompute,
)
from annotate.labels.iclr15 import SCORED_IMAGES, network_name_from_path, read_iclr15
from core.concepts.normalize import normalize_concept
from dissect.hashing import sha256_file

TRAINING_DATA = {"places205": "Places205", "places365": "Places365", "imagenet": "ImageNet"}


@dataclass(frozen=True)
class ImportResult:
    network_id: int
    run_id: int
    campaign_id: int
    layers: int
    units: int
    answers: int
    labels: int


def network_delete_imported(*, name: str) -> None:
    """Delete an imported network with its runs, campaigns, answers and labels (for --replace)."""
    from annotate.crowd.models import Campaign
    from dissect.models import DissectionRun, Network

    network = Network.objects.filter(name=name).first()
    if network is None:
        return
    if network.source != Network.Source.IMPORTED:
        raise ValueError(
            f"network {name!r} was not imported from annotation files; refusing to delete it"
        )
    Campaign.objects.filter(run__network=network).delete()
    DissectionRun.objects.filter(network=network).delete()
    network.delete()


def iclr15_import(
    *,
    path: Path | str,
    network_name: str | None = None,
    replace: bool = False,
    actor=None,
    progress: Progress | None = None,
) -> ImportResult:
    """Import one unitAnnotation_*.mat file (see iclr15.read_iclr15) and compute the unit labels.

    Creates a Network (source 'imported', no weights), a DissectionRun with status 'imported' and
    no image set, its Layers and Units, a finished Campaign with one Task per unit, one Worker per
    anonymous answer slot, and an approved Assignment + Answer per answer.
    """
    from annotate.crowd.models import Answer, Assignment, Campaign, Task, Worker
    from core.audit import audit_record
    from core.models import AuditAction
    from dissect.models import DissectionRun, Layer, Network, Unit

    path = Path(path)
    file_network = network_name_from_path(path)
    name = network_name or file_network
    from core.names import name_error

    problem = name_error(name, field="network", what="network name")
    if problem:
        raise ValueError(problem)
    data = read_iclr15(path)
    training = next((v for k, v in TRAINING_DATA.items() if file_network.startswith(k)), "")
    if Network.objects.filter(name=name).exists():
        if not replace:
            raise ValueError(
                f"network {name!r} already exists; pass --replace to import {path.name} again"
            )
        network_delete_imported(name=name)

    now = timezone.now()
    slots = max(len(unit) for layer in data.layers for unit in layer.units)
    with transaction.atomic():
        network = Network.objects.create(
            name=name,
            arch="alexnet",
            source=Network.Source.IMPORTED,
            training_data=training,
            description=(
                f"Imported from {path.name}: the ICLR'15 authors' Mechanical Turk answers "
                f"(Zhou et al., Object Detectors Emerge in Deep Scene CNNs). No weights."
            ),
        )
        run = DissectionRun.objects.create(
            network=network,
            image_set=None,
            layers=[layer.name for layer in data.layers],
            parameters={
                "source": "iclr15",
                "file": path.name,
                "file_sha256": sha256_file(path),
                "top_k": 60,
                "scored_images": SCORED_IMAGES,
            },
            status=DissectionRun.Status.IMPORTED,
            stage="imported",
            created_by=actor if getattr(actor, "is_authenticated", False) else None,
            finished_at=now,
        )
        layers = Layer.objects.bulk_create(
            [
                Layer(run=run, name=layer.name, order=i, unit_count=len(layer.units))
                for i, layer in enumerate(data.layers)
            ]
        )
        Unit.objects.bulk_create(
            [
                Unit(layer=row, index=u)
                for row, layer in zip(layers, data.layers, strict=True)
                for u in range(len(layer.units))
            ],
            batch_size=1000,
        )
        units = {
            (lname, index): uid
            for uid, lname, index in Unit.objects.filter(layer__run=run).values_list(
                "id", "layer__name", "index"
            )
        }
        campaign = Campaign.objects.create(
            name=f"ICLR'15 Mechanical Turk answers: {name}",
            run=run,
            layers=[layer.name for layer in data.layers],
            tiles_per_task=60,
            controls_per_task=3,
            redundancy=slots,
            status=Campaign.Status.FINISHED,
            instructions="Imported answers; the tiles the workers saw are not part of the release.",
            created_by=actor if getattr(actor, "is_authenticated", False) else None,
        )
        workers = []
        for k in range(1, slots + 1):
            worker, _ = Worker.objects.get_or_create(
                source=Worker.Source.IMPORTED,
                external_id=f"iclr15/{name}/slot{k}",
                defaults={"pseudonym": f"iclr15-{name[:18]}-w{k}"},
            )
            workers.append(worker)
        Task.objects.bulk_create(
            [Task(campaign=campaign, unit_id=uid) for uid in units.values()], batch_size=1000
        )
        tasks = dict(Task.objects.filter(campaign=campaign).values_list("unit_id", "id"))

        normalized: dict[str, str] = {}
        categories: dict[str, str | None] = {}
        for layer in data.layers:
            for unit in layer.units:
                for answer in unit:
                    if answer.description not in normalized:
                        result = normalize_concept(answer.description, merges={})
                        key = result.name[:CONCEPT_MAX_LENGTH]
                        normalized[answer.description] = key
                        if key:
                            categories.setdefault(key, result.category)
        concepts = concepts_get_or_create(names=categories)

        assignments, answers = [], []
        for layer in data.layers:
            for index, unit in enumerate(layer.units):
                task_id = tasks[units[(layer.name, index)]]
                for slot, answer in enumerate(unit):
                    assignments.append(
                        Assignment(
                            task_id=task_id,
                            worker=workers[slot],
                            status=Assignment.Status.APPROVED,
                            accepted_at=now,
                            submitted_at=now,
                            reviewed_at=now,
                        )
                    )
                    answers.append(answer)
        Assignment.objects.bulk_create(assignments, batch_size=1000)
        # bulk_create sets primary keys on PostgreSQL and SQLite >= 3.35; re-read to be safe elsewhere.
        if any(a.pk is None for a in assignments):
            ids = list(
                Assignment.objects.filter(task__campaign=campaign)
                .order_by("id")
                .values_list("id", flat=True)
            )
            for assignment, pk in zip(assignments, ids, strict=True):
                assignment.pk = pk
        Answer.objects.bulk_create(
            [
                Answer(
                    assignment_id=assignment.pk,
                    concept_text=answer.description[:200],
                    concept=concepts.get(normalized[answer.description]),
                    category=answer.category,
                    flagged_tiles=[],
                    precision=answer.precision,
                )
                for assignment, answer in zip(assignments, answers, strict=True)
            ],
            batch_size=1000,
        )
        audit_record(
            actor=actor,
            action=AuditAction.ICLR15_IMPORT,
            target=run,
            data={"file": path.name, "network": name, "answers": len(answers)},
        )
    labels = run_labels_recompute(run_id=run.pk, progress=progress)
    return ImportResult(
        network_id=network.pk,
        run_id=run.pk,
        campaign_id=campaign.pk,
        layers=len(layers),
        units=len(units),
        answers=len(answers),
        labels=labels,
    )
