"""Labels learns of changed answers through the crowd's signal (crowd never imports labels)."""

from django.db import transaction

from annotate.crowd.signals import answers_changed, consensus_requested
from dissect.signals import unit_labels_requested


def _recompute_on_commit(sender, *, unit_ids, **kwargs) -> None:
    from annotate.labels.tasks import recompute_unit_label

    units = sorted(unit_ids)
    transaction.on_commit(lambda: [recompute_unit_label.delay(u) for u in units])


def _crowd_consensus(sender, *, unit_ids, **kwargs) -> dict[int, str]:
    from annotate.labels.models import UnitLabel

    return dict(
        UnitLabel.objects.filter(source=UnitLabel.Source.CROWD, unit_id__in=unit_ids)
        .exclude(concept_text="")
        .values_list("unit_id", "concept_text")
    )


def _unit_labels(sender, *, unit, **kwargs) -> list:
    from annotate.labels.models import UnitLabel

    return list(UnitLabel.objects.filter(unit=unit))


def connect() -> None:
    answers_changed.connect(_recompute_on_commit, dispatch_uid="labels.recompute_on_commit")
    consensus_requested.connect(_crowd_consensus, dispatch_uid="labels.crowd_consensus")
    unit_labels_requested.connect(_unit_labels, dispatch_uid="labels.unit_labels")
