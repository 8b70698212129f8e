"""dissect's state changes leave audit rows (core.audit), written in the change's transaction."""

import pytest
from PIL import Image as PILImage

from core.models import AuditAction, AuditEvent
from dissect import services
from dissect.models import DissectionRun, Image, ImageSet, Network

pytestmark = pytest.mark.django_db


def _actions(target) -> list[str]:
    return list(
        AuditEvent.objects.filter(target_type=target._meta.label_lower, target_id=str(target.pk))
        .order_by("id")
        .values_list("action", flat=True)
    )


def test_run_create_cancel_and_resume_are_audited(make_user):
    researcher = make_user("researcher")
    network = Network.objects.create(name="audit-net", arch="alexnet", layer_aliases={"conv5": "x"})
    image_set = ImageSet.objects.create(name="audit-images", root="/tmp")
    for i in range(20):
        Image.objects.create(image_set=image_set, path=f"{i}.jpg", status=Image.Status.OK)
    run = services.run_create(
        network=network, image_set=image_set, layers=["conv5"], top_k=1, created_by=researcher
    )
    services.run_cancel(run=run, actor=researcher)
    services.run_resume(run=run, actor=researcher)
    assert _actions(run) == [AuditAction.RUN_CREATE, AuditAction.RUN_CANCEL, AuditAction.RUN_RESUME]
    created = AuditEvent.objects.get(action=AuditAction.RUN_CREATE)
    assert created.actor == researcher and created.data["layers"] == ["conv5"]


def test_a_refused_run_leaves_no_row_and_no_audit(make_user):
    network = Network.objects.create(name="audit-net", arch="alexnet", layer_aliases={"conv5": "x"})
    image_set = ImageSet.objects.create(name="audit-images", root="/tmp")
    with pytest.raises(services.PipelineError):
        services.run_create(network=network, image_set=image_set, layers=["conv5"], top_k=0)
    assert not DissectionRun.objects.exists() and not AuditEvent.objects.exists()


def test_a_state_conflict_is_a_409_kind_of_error():
    network = Network.objects.create(name="audit-net", arch="alexnet")
    image_set = ImageSet.objects.create(name="audit-images", root="/tmp")
    run = DissectionRun.objects.create(
        network=network, image_set=image_set, layers=["conv5"], status=DissectionRun.Status.DONE
    )
    with pytest.raises(services.PipelineConflict) as error:
        services.run_cancel(run=run)
    assert error.value.status == 409


def test_an_image_set_scan_is_audited(tmp_path):
    PILImage.new("RGB", (8, 8)).save(tmp_path / "a.png")
    image_set = services.image_set_scan(name="audit-scan", root=tmp_path)
    assert _actions(image_set) == [AuditAction.IMAGE_SET_SCAN]
    assert AuditEvent.objects.get().data["images"] == 1
