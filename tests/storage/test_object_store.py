"""Media, run artifacts and image sets on a real S3-compatible store (SeaweedFS, started by the
``object_store`` session fixture): nothing here mocks S3."""

import io
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from django.core.files.storage import default_storage

from dissect import artifacts
from dissect.image_store import image_set_local
from dissect.models import DissectionRun, Shard, UnitImage
from dissect.services import run_create, run_merge, run_resume, run_start
from dissect.services.common import PipelineError
from tests.conftest import REPO, S3_SECRET
from tests.dissect.pipeline.conftest import SMALL, run_eagerly


def test_artifacts_round_trip_by_name_in_the_bucket(s3_storage):
    store, prefix = s3_storage
    state = {"conv": {"scores": torch.arange(6.0).view(2, 3), "n": 4}}
    artifacts.torch_save(artifacts.shard_state_name(7, 0), state)
    artifacts.text_save(artifacts.shard_labels_name(7, 0), '{"labeled": 3}')
    assert "runs/7/shard-00000.pt" in store.keys(prefix)
    loaded = artifacts.torch_load(artifacts.shard_state_name(7, 0))
    assert torch.equal(loaded["conv"]["scores"], state["conv"]["scores"])
    # Saving again replaces the object (no renamed copies next to it).
    artifacts.text_save(artifacts.shard_labels_name(7, 0), '{"labeled": 5}')
    assert artifacts.text_read(artifacts.shard_labels_name(7, 0)) == '{"labeled": 5}'
    assert store.keys(prefix) == ["runs/7/shard-00000.labels.json", "runs/7/shard-00000.pt"]
    assert artifacts.run_artifacts_delete(7) == 2
    assert store.keys(prefix) == []
    assert artifacts.text_read(artifacts.shard_labels_name(7, 0)) is None
    with pytest.raises(artifacts.ArtifactMissing):
        artifacts.torch_load(artifacts.merged_state_name(7))


def test_a_truncated_state_object_is_reported_corrupt(s3_storage):
    store, prefix = s3_storage
    name = artifacts.merged_state_name(3)
    artifacts.torch_save(name, {"a": torch.ones(100)})
    whole = artifacts.artifact_read(name)
    store.client().put_object(Bucket=store.bucket, Key=f"{prefix}/runs/{name}", Body=whole[:50])
    with pytest.raises(artifacts.ArtifactCorrupt, match="3/merged.pt"):
        artifacts.torch_load(name)


def _store_settings(settings, **changes):
    options = {**settings.STORAGES["default"]["OPTIONS"], **changes}
    settings.STORAGES = {**settings.STORAGES, "default": {**settings.STORAGES["default"],
                                                          "OPTIONS": options}}  # fmt: skip


def test_store_problems_name_the_variable_to_fix(s3_storage, settings):
    assert artifacts.store_problem() is None
    _store_settings(settings, secret_key="not-the-secret")
    assert artifacts.store_problem().startswith("AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY:")
    _store_settings(settings, secret_key=S3_SECRET, bucket_name="no-such-bucket")
    assert artifacts.store_problem().startswith("AWS_STORAGE_BUCKET_NAME:")
    from botocore.config import Config

    _store_settings(settings, endpoint_url="http://127.0.0.1:9", bucket_name="x",
                    client_config=Config(connect_timeout=1, retries={"max_attempts": 0}))  # fmt: skip
    problem = artifacts.store_problem()
    assert problem.startswith("AWS_S3_ENDPOINT_URL:") and "127.0.0.1:9" in problem


def test_a_run_on_the_store_keeps_states_tiles_and_images_there(
    s3_storage, tiny_network, image_set, django_capture_on_commit_callbacks, settings, tmp_path
):
    store, prefix = s3_storage
    # The set was scanned before the store was switched on: scanning it again copies it there.
    from dissect.services import image_set_scan

    image_set = image_set_scan(name=image_set.name, root=image_set.root)
    keys = store.keys(prefix)
    assert f"imagesets/{image_set.pk}/MIRROR.json" in keys
    # The set travels in packs (tar objects), not one object per file.
    packs = [k for k in keys if k.startswith(f"imagesets/{image_set.pk}/packs/")]
    assert len(packs) == 1 and packs[0].endswith(".tar")
    assert not any(k.startswith(f"imagesets/{image_set.pk}/root/") for k in keys)

    run = run_create(network=tiny_network, image_set=image_set, layers=[SMALL], top_k=3,
                     controls=1, shard_size=5, tile_px=24)  # fmt: skip
    run_eagerly(run_start, django_capture_on_commit_callbacks, run=run)
    run.refresh_from_db()
    assert run.status == DissectionRun.Status.DONE, run.error
    keys = store.keys(prefix)
    for shard in run.shards.all():
        assert f"runs/{shard.state_path}" in keys
    assert f"runs/{run.pk}/merged.pt" in keys
    tiles = set(UnitImage.objects.filter(unit__layer__run=run).values_list("tile_path", flat=True))
    assert tiles and all(f"media/{name}" in keys for name in tiles)
    # Nothing of the run under the local runs folder or media root.
    assert not any(p.is_file() for p in tmp_path.joinpath("runs").rglob("*"))
    assert not any(p.is_file() for p in tmp_path.joinpath("media").rglob("*"))
    # The images were read from this host's scratch copy of the store, not the registered folder.
    root, _labels = image_set_local(image_set=image_set)
    assert root.startswith(str(settings.SCRATCH_DIR))
    assert default_storage.open(next(iter(tiles))).read()[:2] == b"\xff\xd8"  # a JPEG


def test_a_corrupt_shard_state_is_computed_again_never_merged(
    s3_storage, tiny_network, image_set, django_capture_on_commit_callbacks
):
    store, prefix = s3_storage
    from dissect.services import image_set_scan, shard_extract

    image_set = image_set_scan(name=image_set.name, root=image_set.root)
    run = run_create(network=tiny_network, image_set=image_set, layers=[SMALL], top_k=3,
                     shard_size=6, tile_px=16)  # fmt: skip
    for index in range(2):
        shard_extract(run_id=run.pk, shard_index=index)
    reference = artifacts.torch_load(artifacts.shard_state_name(run.pk, 1))
    name = artifacts.shard_state_name(run.pk, 1)
    store.client().put_object(Bucket=store.bucket, Key=f"{prefix}/runs/{name}", Body=b"\x50\x4b")
    with pytest.raises(PipelineError, match="shard 1's stored state cannot be read"):
        run_merge(run_id=run.pk)
    shard = run.shards.get(index=1)
    assert shard.status == Shard.Status.PENDING and not artifacts.artifact_exists(name)
    DissectionRun.objects.filter(pk=run.pk).update(status=DissectionRun.Status.FAILED)
    run.refresh_from_db()
    with django_capture_on_commit_callbacks(execute=True):
        run_resume(run=run)
    run.refresh_from_db()
    assert run.status == DissectionRun.Status.DONE, run.error
    again = artifacts.torch_load(name)
    assert torch.equal(again[SMALL]["top"]["scores"], reference[SMALL]["top"]["scores"])


def _settings_in_a_process(env: dict) -> str:
    code = ("import django, json; django.setup(); from django.conf import settings as s; "
            "print(json.dumps({a: [v['BACKEND'], v.get('OPTIONS', {}).get('location', '')]"
            " for a, v in s.STORAGES.items()}, default=str))")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                         env={**env, "DJANGO_SETTINGS_MODULE": "config.settings"})  # fmt: skip
    return out.stdout + out.stderr


def test_settings_switch_every_storage_to_the_bucket_under_aws_location(tmp_path):
    import json
    import os

    base = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CROWDDISSECT_"))}
    base["CROWDDISSECT_DATA_DIR"] = str(tmp_path / "data")
    env = {**base, "CROWDDISSECT_STORAGE": "s3", "AWS_STORAGE_BUCKET_NAME": "b",
           "AWS_S3_ENDPOINT_URL": "http://127.0.0.1:8333", "AWS_LOCATION": "/lab-a/"}  # fmt: skip
    stores = json.loads(_settings_in_a_process(env).strip().splitlines()[-1])
    assert stores["default"] == ["storages.backends.s3.S3Storage", "lab-a/media"]
    assert stores["artifacts"] == ["storages.backends.s3.S3Storage", "lab-a/runs"]
    assert stores["imagesets"] == ["storages.backends.s3.S3Storage", "lab-a/imagesets"]
    local = json.loads(_settings_in_a_process(base).strip().splitlines()[-1])
    assert local["default"][0] == "django.core.files.storage.FileSystemStorage"
    assert local["artifacts"] == ["dissect.artifacts.AtomicFileSystemStorage",
                                  str(tmp_path / "data" / "runs")]  # fmt: skip
    assert "imagesets" not in local
    for bad, variable in (
        ({"CROWDDISSECT_STORAGE": "ftp"}, "CROWDDISSECT_STORAGE"),
        ({"CROWDDISSECT_STORAGE": "s3"}, "AWS_STORAGE_BUCKET_NAME"),
        ({**env, "AWS_S3_ENDPOINT_URL": "seaweedfs:8333"}, "AWS_S3_ENDPOINT_URL"),
        ({**env, "AWS_ACCESS_KEY_ID": "k"}, "AWS_SECRET_ACCESS_KEY"),
    ):
        out = _settings_in_a_process({**base, **bad})
        assert f"SettingError: {variable}:" in out, out[-500:]


def test_the_media_view_streams_a_tile_from_the_store(s3_storage, client, make_user):
    from dissect.storage import media_url, save_content_addressed

    data = io.BytesIO()
    from PIL import Image

    Image.new("RGB", (8, 8), (200, 10, 10)).save(data, format="PNG")
    name = save_content_addressed(data.getvalue(), kind="tiles", ext="png")
    client.force_login(make_user("researcher"))
    response = client.get(media_url(name))
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == data.getvalue()
    assert response["Cache-Control"].startswith("private")


def test_healthz_names_the_store_when_it_is_down(s3_storage, settings):
    from config.health import check_storage

    assert check_storage() == {"ok": True, "kind": "s3"}
    _store_settings(settings, bucket_name="gone-bucket")
    report = check_storage()
    assert report["ok"] is False and report["error"].startswith("AWS_STORAGE_BUCKET_NAME:")


def test_a_registered_checkpoint_is_loaded_from_the_store_on_a_host_without_the_file(
    db, s3_storage, tmp_path, settings
):
    # Workers on other hosts have no shared disk: the checkpoint goes into the store at
    # registration and each host loads its own scratch copy; the registered file is not read.
    import torchvision

    from dissect.services import networks

    model = torchvision.models.squeezenet1_1(num_classes=5)
    checkpoint = tmp_path / "web-host" / "sq.pth"
    checkpoint.parent.mkdir()
    torch.save(model.state_dict(), checkpoint)
    network = networks.network_register(name="sq", arch="squeezenet1_1", checkpoint=checkpoint)
    checkpoint.unlink()  # this "host" never had the file
    networks._NET_CACHE.clear()
    settings.SCRATCH_DIR = tmp_path / "worker-scratch"
    net = networks.network_load(network=network)
    assert net.weights_sha256 == network.weights_sha256 and net.num_classes == 5
    copy = settings.SCRATCH_DIR / "networks" / network.weights_sha256 / "sq.pth"
    assert copy.is_file()
    x = torch.rand(1, 3, 64, 64)
    with torch.inference_mode():
        assert torch.equal(net.model(x), model.eval()(x))

    # A store without the object: the error says where to register it again.
    artifacts.artifact_delete(f"networks/{network.weights_sha256}/sq.pth")
    copy.unlink()
    networks._NET_CACHE.clear()
    with pytest.raises(PipelineError, match="not in the object store.*register_network"):
        networks.network_load(network=network)


def test_image_set_packs_unpack_to_the_same_files_and_a_bad_pack_is_named(
    s3_storage, image_set, settings, tmp_path, monkeypatch
):
    import json

    from dissect import image_store
    from dissect.services import image_set_scan

    store, prefix = s3_storage
    monkeypatch.setattr(image_store, "PACK_FILES", 5)  # 12 images: three packs
    image_set = image_set_scan(name=image_set.name, root=image_set.root)
    index = json.loads(artifacts.stored_read("imagesets", f"{image_set.pk}/MIRROR.json"))
    assert len(index["packs"]) == 3 and len(index["files"]) == 12
    root, _labels = image_set_local(image_set=image_set)
    for rel in image_set.images.values_list("path", flat=True):
        original = Path(image_set.root) / rel
        assert (Path(root) / rel).read_bytes() == original.read_bytes()
    # A truncated pack: the fetch names it and says what to do; nothing half-filled is kept.
    settings.SCRATCH_DIR = str(tmp_path / "other-host")
    key = f"{prefix}/imagesets/{image_set.pk}/{index['packs'][1]}"
    body = store.client().get_object(Bucket=store.bucket, Key=key)["Body"].read()
    store.client().put_object(Bucket=store.bucket, Key=key, Body=body[:700])
    with pytest.raises(image_store.ImageStoreError, match=r"packs/.*cannot be read.*scan the"):
        image_set_local(image_set=image_set)
    cache = Path(settings.SCRATCH_DIR) / "imagesets"
    assert not any(p.is_file() for p in cache.rglob("*"))


def test_a_set_mirrored_file_by_file_is_still_fetched(s3_storage, image_set, settings, tmp_path):
    import json

    store, prefix = s3_storage
    # What the mirror wrote before packs: one object per file and an index without "packs".
    rels = list(image_set.images.values_list("path", flat=True))
    for rel in rels:
        data = (Path(image_set.root) / rel).read_bytes()
        artifacts.stored_save("imagesets", f"{image_set.pk}/root/{rel}", data)
    index = {"version": "v-old", "root": "root", "labels": "", "files": [f"root/{r}" for r in rels]}
    artifacts.stored_save("imagesets", f"{image_set.pk}/MIRROR.json", json.dumps(index).encode())
    root, _labels = image_set_local(image_set=image_set)
    for rel in rels:
        assert (Path(root) / rel).read_bytes() == (Path(image_set.root) / rel).read_bytes()
    assert root.startswith(str(settings.SCRATCH_DIR))
