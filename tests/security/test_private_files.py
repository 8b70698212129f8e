"""Issue 12, point 1: nothing under media is public.

Every stored file kind (tile, montage, RF map, explain overlay, the image derived from an upload,
export, an image-set file) is requested as anonymous, annotator, researcher and admin, by every
URL that could reach it; each answer is asserted: 302 to the login page, 403, 404 or 200.
"""

import io
from pathlib import Path

import pytest
from django.core.files.storage import default_storage
from PIL import Image as PILImage

from dissect.storage import media_url, save_content_addressed

ROLES = ("anonymous", "annotator", "researcher", "admin")


def _png(shade: int) -> bytes:
    buffer = io.BytesIO()
    PILImage.new("RGB", (8, 8), (shade, 0, 0)).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture
def stored(db, tmp_path):
    """One file of every kind, the rows that point at it, and a signed tile URL of a task."""
    from annotate.crowd import selectors
    from annotate.crowd.models import Campaign, Task
    from annotate.labels.exports import export_storage_name
    from annotate.labels.models import Export
    from dissect import models as dm

    root = tmp_path / "images"
    root.mkdir()
    (root / "cat.png").write_bytes(_png(9))
    network = dm.Network.objects.create(name="privnet", arch="alexnet")
    image_set = dm.ImageSet.objects.create(name="privimgs", root=str(root))
    image = dm.Image.objects.create(image_set=image_set, path="cat.png")
    run = dm.DissectionRun.objects.create(
        network=network, image_set=image_set, layers=["conv5"], status="done"
    )
    layer = dm.Layer.objects.create(run=run, name="conv5", order=0, unit_count=1)
    names = {
        "tile": save_content_addressed(_png(1), kind="tiles", ext="png"),
        "montage": save_content_addressed(_png(2), kind="montages", ext="png"),
        "rf_map": save_content_addressed(_png(3), kind="rf", ext="png"),
        "overlay": save_content_addressed(_png(4), kind="explain", ext="png"),
        "upload": save_content_addressed(_png(5), kind="explain", ext="png"),
    }
    unit = dm.Unit.objects.create(
        layer=layer, index=0, montage_path=names["montage"], rf_map_path=names["rf_map"]
    )
    tile = dm.UnitImage.objects.create(
        unit=unit, image=image, rank=0, score=1.0, tile_path=names["tile"]
    )
    campaign = Campaign.objects.create(name="priv", run=run, layers=["conv5"])
    task = Task.objects.create(campaign=campaign, unit=unit, tile_order=[tile.pk])
    export = Export.objects.create(kind="csv", parameters={"network": "privnet"})
    from django.core.files.base import ContentFile

    name = default_storage.save(
        export_storage_name(export), ContentFile(b"network,unit\nprivnet,0\n")
    )
    path = Path(default_storage.path(name))
    Export.objects.filter(pk=export.pk).update(status="done", file_path=name, sha256="0" * 64)
    return {
        "names": names,
        "image": image,
        "export": export,
        "export_path": path,
        "signed_tile": selectors.task_tiles(task=task)[0].url,
    }


@pytest.fixture
def client_as(client, make_user):
    def _as(role: str):
        if role != "anonymous":
            client.force_login(make_user(role))
        return client

    return _as


def _expect(response, code: int):
    if code == 302:
        assert response.status_code == 302, response.status_code
        assert "/accounts/login/" in response["Location"]
    else:
        assert response.status_code == code, response.status_code


# Media through the researchers' view: login page, 403, or the file.
MEDIA_ANSWERS = {"anonymous": 302, "annotator": 403, "researcher": 200, "admin": 200}


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("kind", ["tile", "montage", "rf_map", "overlay", "upload"])
def test_media_files_for_researchers_only(stored, client_as, role, kind):
    name = stored["names"][kind]
    url = media_url(name)
    assert url.startswith("/files/dissect/")
    response = client_as(role).get(url)
    _expect(response, MEDIA_ANSWERS[role])
    if response.status_code == 200:
        assert b"".join(response.streaming_content) == default_storage.open(name).read()
        assert response["Content-Type"] == "image/png"
        assert response["Cache-Control"].startswith("private")


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("kind", ["tile", "montage", "rf_map", "overlay", "upload"])
def test_no_public_media_folder(stored, client_as, role, kind):
    response = client_as(role).get("/media/" + stored["names"][kind])
    assert response.status_code == 404


@pytest.mark.parametrize("role", ROLES)
def test_signed_tile_url_serves_its_tile_to_anyone_holding_it(stored, client_as, role):
    response = client_as(role).get(stored["signed_tile"])
    assert response.status_code == 200
    assert (
        b"".join(response.streaming_content) == default_storage.open(stored["names"]["tile"]).read()
    )
    forged = client_as(role).get("/tasks/tile/not-a-signed-token/")
    assert forged.status_code == 404


def test_signed_tile_urls_expire(stored, client, monkeypatch):
    import time

    from annotate.crowd.selectors import TILE_TOKEN_MAX_AGE

    later = time.time() + TILE_TOKEN_MAX_AGE + 60
    monkeypatch.setattr("django.core.signing.time.time", lambda: later)
    assert client.get(stored["signed_tile"]).status_code == 404


EXPORT_ANSWERS = {"anonymous": 302, "annotator": 403, "researcher": 403, "admin": 200}


@pytest.mark.parametrize("role", ROLES)
def test_exports_only_through_the_audited_download(stored, client_as, role):
    from core.models import AuditEvent

    client = client_as(role)
    export, path = stored["export"], stored["export_path"]
    relative = path.relative_to(default_storage.location).as_posix()
    assert relative.startswith("exports/")
    # No folder route reaches it; the media view refuses names outside dissect/.
    assert client.get("/media/" + relative).status_code == 404
    response = client.get("/files/" + relative)
    assert response.status_code == {"anonymous": 302, "annotator": 403}.get(role, 404)
    before = AuditEvent.objects.filter(action="export.download").count()
    response = client.get(f"/reports/exports/{export.pk}/download/")
    _expect(response, EXPORT_ANSWERS[role])
    if response.status_code == 200:
        assert b"".join(response.streaming_content) == path.read_bytes()
        assert AuditEvent.objects.filter(action="export.download").count() == before + 1
        # Offered under a readable name; stored under an unguessable one.
        assert "privnet-csv" in response["Content-Disposition"]


def test_export_names_are_unguessable(db):
    from annotate.labels.exports import stored_name
    from annotate.labels.models import Export

    export = Export(pk=7, kind="csv", parameters={"network": "a/../../b"})
    first, second = stored_name(export), stored_name(export)
    assert first != second
    assert first.startswith("7-") and first.endswith(".csv")
    assert "/" not in first and ".." not in first
    assert len(first.split("-", 1)[1].removesuffix(".csv")) >= 32  # 24 random bytes, base64


@pytest.mark.parametrize("role", ROLES)
def test_image_set_files_for_researchers_only(stored, client_as, role):
    response = client_as(role).get(f"/explain/images/{stored['image'].pk}/")
    _expect(response, MEDIA_ANSWERS[role])


@pytest.mark.parametrize(
    "name",
    [
        "dissect/../exports/x.csv",
        "dissect/tiles/../../exports/x.csv",
        "dissect//etc/passwd",
        "dissect/tiles/missing.png",
        "exports/anything.csv",
        "dissect",
    ],
)
def test_media_view_refuses_names_outside_dissect(stored, client_as, name):
    response = client_as("researcher").get("/files/" + name)
    assert response.status_code == 404


def test_api_token_clients_can_follow_media_urls(stored, client, make_user):
    from rest_framework.authtoken.models import Token

    token = Token.objects.create(user=make_user("researcher"))
    url = media_url(stored["names"]["montage"])
    assert client.get(url, HTTP_AUTHORIZATION=f"Token {token.key}").status_code == 200
    assert client.get(url, HTTP_AUTHORIZATION="Token nope").status_code == 302
    annotator = Token.objects.create(user=make_user("annotator"))
    assert client.get(url, HTTP_AUTHORIZATION=f"Token {annotator.key}").status_code == 403
