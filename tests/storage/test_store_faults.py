"""Writes and reads on the real object store (SeaweedFS): one PUT per content-addressed tile,
montages from the tiles rendered in this process, and store failures (a missing bucket, wrong
credentials, the store gone for good or for a moment) as one error naming the store, the object
and the variable to check, after botocore's own retries. Nothing here mocks S3: faults are a
wrong setting or the TCP link to SeaweedFS cut (``store_link``)."""

import threading

import pytest
from botocore.config import Config
from django.core.files.storage import default_storage

from config import env as config_env
from dissect import artifacts
from dissect.artifacts import StoreUnavailable
from dissect.models import DissectionRun, Unit, UnitImage
from dissect.services import image_set_scan, run_create, run_resume, run_start
from dissect.storage import media_read, save_content_addressed
from tests.dissect.pipeline.conftest import SMALL, run_eagerly


def _point(settings, aliases=("default", "artifacts", "imagesets"), **changes):
    """Change the S3 options of some storages (endpoint, bucket, key pair, client config)."""
    stores = dict(settings.STORAGES)
    for alias in aliases:
        stores[alias] = {**stores[alias], "OPTIONS": {**stores[alias]["OPTIONS"], **changes}}
    settings.STORAGES = stores


def _few_attempts(n: int) -> Config:
    """The deployed client config with ``n`` attempts (a test that waits out every retry)."""
    return config_env.s3_client_config("path").merge(
        Config(retries={"mode": "standard", "max_attempts": n})
    )


def test_a_tile_on_the_store_is_one_put_and_no_head(s3_storage):
    store, prefix = s3_storage
    sent = []
    client = default_storage.connection.meta.client
    client.meta.events.register("before-send.s3", lambda request, **_: sent.append(request.method))
    name = save_content_addressed(b"tile bytes", kind="tiles", ext="jpg")
    assert sent == ["PUT"]
    # The same bytes again: the same name, one more PUT, still one object.
    assert save_content_addressed(b"tile bytes", kind="tiles", ext="jpg") == name
    assert sent == ["PUT", "PUT"]
    assert store.keys(prefix) == [f"media/{name}"]
    assert media_read(name) == b"tile bytes"


def test_montages_come_from_the_tiles_rendered_here_and_equal_those_read_back(
    s3_storage, tiny_network, image_set, monkeypatch
):
    from dissect import services
    from dissect.services import rendering

    image_set = image_set_scan(name=image_set.name, root=image_set.root)
    run = run_create(network=tiny_network, image_set=image_set, layers=[SMALL], top_k=3,
                     controls=1, shard_size=12, tile_px=24)  # fmt: skip
    run_start(run=run)  # running; the on-commit enqueue never fires in this test
    services.shard_extract(run_id=run.pk, shard_index=0)
    services.run_merge(run_id=run.pk)
    reads = []
    read = rendering.media_read
    monkeypatch.setattr(rendering, "media_read", lambda name: reads.append(name) or read(name))
    services.run_render(run_id=run.pk)
    services.run_montages(run_id=run.pk)
    units = Unit.objects.filter(layer__run=run)
    montages = dict(units.values_list("pk", "montage_path"))
    assert reads == [] and all(montages.values())

    # Tiles rendered by another worker (nothing kept here): read from the store, same montages.
    units.update(montage_path="")
    services.run_montages(run_id=run.pk)
    tops = UnitImage.objects.filter(unit__layer__run=run, kind=UnitImage.Kind.TOP)
    assert sorted(reads) == sorted(tops.values_list("tile_path", flat=True))
    assert dict(units.values_list("pk", "montage_path")) == montages


def test_a_missing_bucket_names_the_store_the_object_and_the_variable(s3_storage, settings):
    """SeaweedFS creates a missing bucket on a PUT by an admin key (the start-up check,
    ``store_problem``, catches a wrong name before any write); reading or listing one fails."""
    store, prefix = s3_storage
    _point(settings, bucket_name="no-such-bucket")
    with pytest.raises(StoreUnavailable) as caught:
        artifacts.run_artifacts_delete(4)
    message = str(caught.value)
    assert message.startswith("AWS_STORAGE_BUCKET_NAME:"), message
    assert store.endpoint in message and "'no-such-bucket'" in message
    assert f"listing {prefix}/runs/4/" in message and "create it" in message
    assert artifacts.store_problem().startswith("AWS_STORAGE_BUCKET_NAME:")


def test_wrong_credentials_name_the_key_pair_for_writes_and_reads(s3_storage, settings):
    store, prefix = s3_storage
    name = save_content_addressed(b"readable", kind="tiles", ext="jpg")
    artifacts.text_save("5/note.txt", "kept")
    _point(settings, secret_key="not-the-secret")
    for attempt in (
        lambda: save_content_addressed(b"y", kind="tiles", ext="jpg"),
        lambda: media_read(name),
        lambda: artifacts.text_read("5/note.txt"),
    ):
        with pytest.raises(StoreUnavailable) as caught:
            attempt()
        message = str(caught.value)
        assert message.startswith("AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY:"), message
        assert store.endpoint in message and f"'{store.bucket}'" in message
    assert f"{prefix}/media/{name}" in str(pytest.raises(StoreUnavailable, media_read, name).value)


def test_a_store_gone_for_good_fails_after_botocores_retries_with_one_line(
    s3_storage, store_link, settings
):
    _point(settings, endpoint_url=store_link.endpoint, client_config=_few_attempts(3))
    name = save_content_addressed(b"before", kind="tiles", ext="jpg")
    store_link.cut()
    with pytest.raises(StoreUnavailable) as caught:
        save_content_addressed(b"after", kind="tiles", ext="jpg")
    message = str(caught.value)
    assert message.startswith("AWS_S3_ENDPOINT_URL:"), message
    assert store_link.endpoint in message and "after 3 attempts" in message
    assert "media/dissect/tiles/" in message and "reachable" in message
    with pytest.raises(StoreUnavailable, match=f"^AWS_S3_ENDPOINT_URL: .*reading .*{name}"):
        media_read(name)


def test_a_short_outage_is_ridden_out_by_botocores_retries(s3_storage, store_link, settings):
    store, prefix = s3_storage
    # Without retries the cut link fails the write at once ...
    _point(settings, endpoint_url=store_link.endpoint, client_config=_few_attempts(1))
    store_link.cut()
    with pytest.raises(StoreUnavailable, match="^AWS_S3_ENDPOINT_URL:"):
        save_content_addressed(b"during the outage", kind="tiles", ext="jpg")
    # ... with the deployed client config (config.env.s3_client_config) it waits the outage out.
    deployed = config_env.s3_client_config("path")
    _point(settings, endpoint_url=store_link.endpoint, client_config=deployed)
    threading.Timer(0.5, store_link.restore).start()
    name = save_content_addressed(b"during the outage", kind="tiles", ext="jpg")
    assert f"media/{name}" in store.keys(prefix)
    assert media_read(name) == b"during the outage"


def test_a_run_that_loses_its_store_mid_render_fails_naming_it_and_resumes(
    s3_storage, store_link, settings, tiny_network, image_set, monkeypatch,
    django_capture_on_commit_callbacks,
):  # fmt: skip
    from dissect.services import rendering

    store, prefix = s3_storage
    _point(settings, endpoint_url=store_link.endpoint, client_config=_few_attempts(2))
    image_set = image_set_scan(name=image_set.name, root=image_set.root)
    run = run_create(network=tiny_network, image_set=image_set, layers=[SMALL], top_k=3,
                     controls=1, shard_size=12, tile_px=24)  # fmt: skip
    maps = rendering.stored_maps

    def then_cut(run_id):  # the store goes away once the render has read the merged state
        found = maps(run_id)
        store_link.cut()
        return found

    monkeypatch.setattr(rendering, "stored_maps", then_cut)
    with pytest.raises(StoreUnavailable):
        run_eagerly(run_start, django_capture_on_commit_callbacks, run=run)
    run.refresh_from_db()
    assert run.status == DissectionRun.Status.FAILED
    assert "AWS_S3_ENDPOINT_URL:" in run.error and store_link.endpoint in run.error, run.error
    assert "media/dissect/tiles/" in run.error

    monkeypatch.setattr(rendering, "stored_maps", maps)
    store_link.restore()
    with django_capture_on_commit_callbacks(execute=True):
        run_resume(run=run)
    run.refresh_from_db()
    assert run.status == DissectionRun.Status.DONE, run.error
    keys = set(store.keys(prefix))
    tiles = UnitImage.objects.filter(unit__layer__run=run).values_list("tile_path", flat=True)
    assert tiles and all(f"media/{name}" in keys for name in tiles)


def test_a_file_view_answers_503_while_the_store_is_down(db, s3_storage, store_link, settings):
    # Served whole from the store (never a raw botocore error mid-stream): 200 with the bytes,
    # 404 for a name that is not there, 503 with what to do while the link is cut.
    from django.test import Client

    from core.roles import user_create
    from dissect.storage import media_url

    _point(settings, endpoint_url=store_link.endpoint, client_config=_few_attempts(2))
    name = save_content_addressed(b"\xff\xd8tile", kind="tiles", ext="jpg")
    client = Client()
    client.force_login(user_create(username="r", password="pw-r-12345", role="researcher"))
    ok = client.get(media_url(name))
    assert ok.status_code == 200 and b"".join(ok.streaming_content) == b"\xff\xd8tile"
    assert ok["Content-Type"] == "image/jpeg" and "immutable" in ok["Cache-Control"]
    assert client.get(media_url(name.replace(name[-20:-4], "0" * 16))).status_code == 404
    store_link.cut()
    down = client.get(media_url(name))
    assert down.status_code == 503 and down["Retry-After"] == "60"
    assert b"reload the page" in down.content
