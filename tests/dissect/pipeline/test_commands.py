"""The dissect, layers, register_network and scan_images commands: clear errors, a run, status,
cancel and resume."""

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from dissect.models import DissectionRun, Network

from .conftest import SMALL


def _call(*args):
    from io import StringIO

    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_unknown_network_says_how_to_register_it(image_folder):
    with pytest.raises(CommandError, match="register_network nope --arch ARCH"):
        _call("dissect", "--network", "nope", "--images", str(image_folder), "--layers", "x")


@pytest.mark.django_db
def test_missing_folder_and_missing_arguments(tiny_network, tmp_path):
    with pytest.raises(CommandError, match="no such folder"):
        _call("dissect", "--network", "tiny", "--images", str(tmp_path / "gone"), "--layers", "x")
    with pytest.raises(CommandError, match="missing --images, --layers"):
        _call("dissect", "--network", "tiny")


@pytest.mark.django_db
def test_unknown_layer_lists_the_valid_ones(image_folder, tmp_path):
    _call("register_network", "r18", "--arch", "resnet18", "--input-size", "64", "--random-init")
    with pytest.raises(CommandError) as error:
        _call("dissect", "--network", "r18", "--images", str(image_folder), "--layers", "conv9")
    message = str(error.value)
    assert "conv9" in message and "layer1, layer2, layer3, layer4" in message
    assert not DissectionRun.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_run_status_cancel_and_resume(tiny_network, image_folder):
    # transaction=True: the command's on-commit enqueue runs at once, as in a real terminal.
    out = _call(
        "dissect", "--network", "tiny", "--images", str(image_folder), "--layers", SMALL,
        "--top-k", "2", "--controls", "1", "--shard-size", "6", "--tile-px", "20",
    )  # fmt: skip
    run = DissectionRun.objects.get()
    assert run.status == DissectionRun.Status.DONE, run.error
    assert "status: done" in out and "shards: 2/2 stored" in out
    assert "render" in _call("dissect", "--status", str(run.pk))
    with pytest.raises(CommandError, match="already done"):
        _call("dissect", "--resume", str(run.pk))
    with pytest.raises(CommandError, match="no run 999"):
        _call("dissect", "--status", "999")

    # A cancelled run resumes from its stored shards: only the missing one is recomputed.
    DissectionRun.objects.filter(pk=run.pk).update(status=DissectionRun.Status.RUNNING)
    assert "cancelled" in _call("dissect", "--cancel", str(run.pk))
    shard = run.shards.get(index=1)
    stored = shard.state_path
    run.shards.filter(index=1).update(status="pending")
    kept = run.shards.get(index=0).finished_at
    out = _call("dissect", "--resume", str(run.pk))
    run.refresh_from_db()
    assert run.status == DissectionRun.Status.DONE and "status: done" in out
    assert run.shards.get(index=0).finished_at == kept  # not redone
    assert run.shards.get(index=1).state_path == stored


@pytest.mark.django_db
def test_layers_and_register_and_scan_commands(image_folder, tiny_checkpoint):
    table = _call("layers", "resnet18")
    assert "layer4" in table and "512x7x7" in table and "435" in table  # theoretical RF px
    out = _call("register_network", "sq", "--arch", "squeezenet1_1", "--checkpoint",
                str(tiny_checkpoint), "--classes", str(_classes(image_folder)))  # fmt: skip
    assert "squeezenet1_1, 4 classes" in out and Network.objects.filter(name="sq").exists()
    (image_folder / "broken.jpg").write_bytes(b"")
    out = _call("scan_images", "folder", str(image_folder))
    assert "12 images, 1 bad" in out and "bad: broken.jpg" in out
    with pytest.raises(CommandError, match="no such file"):
        _call("register_network", "x", "--arch", "alexnet", "--checkpoint", "/nonexistent.pt")


def _classes(folder):
    path = folder.parent / "classes.txt"
    path.write_text("a\nb\nc\nd\n")
    return path


@pytest.mark.django_db(transaction=True)
def test_advanced_options_reach_the_run_and_a_bad_one_is_named(tiny_network, image_folder):
    args = ["dissect", "--network", "tiny", "--images", str(image_folder), "--layers", SMALL]
    args += ["--top-k", "2", "--controls", "0", "--shard-size", "12", "--tile-px", "20"]
    with pytest.raises(CommandError, match=r"rf_patch_px: give a whole number from 1 to 1024\."):
        _call(*args, "--rf-patch-px", "0")
    assert not DissectionRun.objects.exists()  # nothing half-made

    _call(*args, "--quantile", "0.9", "--montage-tile-px", "24")
    run = DissectionRun.objects.get()
    assert run.status == DissectionRun.Status.DONE, run.error
    assert run.parameters["quantile"] == 0.9 and run.parameters["montage_tile_px"] == 24
    from django.core.files.storage import default_storage
    from PIL import Image

    unit = run.layer_set.get().units.first()
    with default_storage.open(unit.montage_path) as fh, Image.open(fh) as montage:
        assert montage.height == 24  # the two top tiles in one row, at --montage-tile-px
