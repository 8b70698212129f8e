"""Exports round-trip: export -> parse -> the same numbers as the database."""

import csv
import hashlib
import io
import json
import zipfile
from io import StringIO
from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.management import call_command

from annotate.labels.aggregation import run_labels_recompute
from annotate.labels.exports import ExportError, export_create, export_run

ANSWERS = [
    (0, "a", "Dogs", "object", 0.9, [], "approved"),
    (0, "b", "dog", "object", 0.75, [1], "submitted"),
    (0, "c", "cat", "part", 0.5, [0, 1], "rejected"),
    (1, "a", "blue sky", "region", 1.0, [], "approved"),
    (1, "b", "Sky", "region", 0.5, [0, 2], "approved"),
    (1, "c", "water", "material", 0.25, [0, 1, 2], "approved"),
    (2, "a", "stripes", "material", 0.6, [3], "submitted"),
]


@pytest.fixture
def labeled(crowd_world):
    world = crowd_world(ANSWERS)
    run_labels_recompute(run_id=world["run"].pk)
    return world


def labels_in_db(run):
    from annotate.labels.models import UnitLabel

    return {
        (lab.unit.layer.name, lab.unit.index): lab
        for lab in UnitLabel.objects.filter(unit__layer__run=run).select_related("unit__layer")
    }


def make_export(kind, **parameters):
    from annotate.labels.models import Export

    export = export_create(
        kind=kind, parameters={"network": "tiny-net", **parameters}, actor=None, enqueue=False
    )
    export = export_run(export_id=export.pk)
    assert export.status == Export.Status.DONE, export.error
    path = Path(default_storage.path(export.file_path))
    assert hashlib.sha256(path.read_bytes()).hexdigest() == export.sha256
    assert export.size_bytes == path.stat().st_size
    return export, path


def test_jsonl_round_trip(labeled):
    from core.models import AuditEvent

    export, path = make_export("jsonl")
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    db = labels_in_db(labeled["run"])
    assert len(lines) == len(db) == 3
    for line in lines:
        label = db[(line["layer"], line["unit"])]
        assert line["network"] == "tiny-net"
        assert line["concept"] == label.concept_text
        assert line["category"] == label.category
        assert line["precision"] == pytest.approx(label.precision)
        assert line["agreement"] == pytest.approx(label.agreement)
        assert line["is_detector"] == label.is_detector
        assert len(line["answers"]) == label.answer_count
        # Recompute the unit's precision from the exported answers: same number.
        answers = line["answers"]
        assert sum(a["precision"] for a in answers) / len(answers) == pytest.approx(label.precision)
        assert all(a["worker"].startswith("tiny-net-") for a in answers)
        assert all(a["active_seconds"] == 12.5 for a in answers)
        # The run-level crowd model's verdict travels with the unit.
        assert line["crowd_model"]["method"] == "one_coin_ds"
        assert line["crowd_model"]["category"] in {a["category"] for a in answers}
        assert 0 <= line["crowd_model"]["tile_precision"] <= 1
    # The rejected answer is not exported.
    assert "cat" not in {a["description"] for line in lines for a in line["answers"]}
    actions = set(
        AuditEvent.objects.filter(target_id=str(export.pk)).values_list("action", flat=True)
    )
    assert actions == {"export.create", "export.done"}
    done = AuditEvent.objects.get(action="export.done", target_id=str(export.pk))
    assert done.data["sha256"] == export.sha256


def test_csv_tally_and_milan_round_trip(labeled):
    db = labels_in_db(labeled["run"])
    _, path = make_export("csv")
    rows = list(csv.DictReader(io.StringIO(path.read_text())))
    assert len(rows) == 3
    for row in rows:
        label = db[(row["layer"], int(row["unit"]))]
        assert row["concept"] == label.concept_text
        assert float(row["precision"]) == pytest.approx(label.precision)
        assert (row["is_detector"] == "True") == label.is_detector
        assert len(row["descriptions"].split(" | ")) == label.answer_count

    _, path = make_export("tally")
    rows = list(csv.DictReader(io.StringIO(path.read_text())))
    assert [r["unit"] for r in rows] == ["1", "2", "3"]  # NetDissect numbers units from 1
    for row in rows:
        label = db[(row["layer"], int(row["unit"]) - 1)]
        assert row["label"] == label.concept_text and row["category"] == label.category
        assert float(row["score"]) == pytest.approx(label.precision, abs=1e-6)

    _, path = make_export("milan")
    items = json.loads(path.read_text())
    assert [(i["layer"], i["unit"]) for i in items] == sorted(db)
    assert items[0]["descriptions"] == ["Dogs", "dog"]


def test_detectors_only_and_bad_requests(labeled):
    db = labels_in_db(labeled["run"])
    _, path = make_export("jsonl", detectors_only=True)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert {(x["layer"], x["unit"]) for x in lines} == {k for k, v in db.items() if v.is_detector}
    with pytest.raises(ExportError, match="kind"):
        export_create(kind="pdf", parameters={"network": "tiny-net"}, actor=None, enqueue=False)
    with pytest.raises(ExportError, match="not found"):
        export_create(kind="csv", parameters={"network": "nope"}, actor=None, enqueue=False)
    with pytest.raises(ExportError, match="layer"):
        export_create(
            kind="csv",
            parameters={"network": "tiny-net", "layers": ["fc9"]},
            actor=None,
            enqueue=False,
        )


def test_zip_has_labels_tiles_and_a_data_card(labeled):
    from dissect.models import UnitImage

    tile = UnitImage.objects.filter(unit=labeled["units"][0], kind="top", rank=0).get()
    tile.tile_path = default_storage.save("dissect/tiles/test.jpg", ContentFile(b"jpeg-bytes"))
    tile.save()
    export, path = make_export("zip")
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        assert {"labels.jsonl", "datacard.json", "README.md"} <= set(names)
        assert "tiles/conv5/0/top-000.jpg" in names
        assert archive.read("tiles/conv5/0/top-000.jpg") == b"jpeg-bytes"
        card = json.loads(archive.read("datacard.json"))
        lines = archive.read("labels.jsonl").decode().splitlines()
    assert len(lines) == 3
    assert card["network"]["weights_sha256"] == "ab" * 32
    assert card["image_set"]["manifest_sha256"] == "cd" * 32
    assert card["run"]["seed"] == 7 and card["run"]["parameters"] == {"top_k": 4}
    assert card["campaigns"][0]["redundancy"] == 3
    assert card["code_version"] and card["export"]["id"] == export.pk
    assert card["contents"] == {"units": 3, "tiles": 1}


def test_export_run_is_idempotent_and_the_command_works(labeled, tmp_path):
    export, path = make_export("csv")
    again = export_run(export_id=export.pk)
    assert (again.sha256, again.file_path) == (export.sha256, export.file_path)
    out = StringIO()
    target = tmp_path / "labels.jsonl"
    call_command(
        "export_labels", network="tiny-net", format="jsonl", output=str(target), stdout=out
    )
    assert "sha256" in out.getvalue()
    assert len(target.read_text().splitlines()) == 3


def test_flagged_tiles_map_back_to_images_and_zip_files(labeled, make_user):
    """Export -> read back: the same answers and the same flagged images, by position in the task's
    tile order, by image id and by the zip's tile file, in JSONL, CSV, the zip and the API."""
    from rest_framework.test import APIClient

    from annotate.crowd.models import Answer, Task
    from dissect.models import UnitImage

    # Every tile on disk, its bytes naming its image; the tasks show their tiles reversed, so a
    # position is not a rank.
    for tile in UnitImage.objects.filter(unit__layer__run=labeled["run"]):
        tile.tile_path = default_storage.save(
            f"dissect/tiles/{tile.pk}.jpg", ContentFile(f"image {tile.image_id}".encode())
        )
        tile.save()
    for task in Task.objects.filter(campaign=labeled["campaign"]):
        task.tile_order = task.tile_order[::-1]
        task.save()
    truth = {
        (a.assignment.worker.pseudonym, a.concept_text): (a, a.assignment.task)
        for a in Answer.objects.select_related("assignment__worker", "assignment__task")
    }

    def check(answer: dict):
        stored, task = truth[(answer["worker"], answer["description"])]
        assert (answer["category"], answer["precision"]) == (stored.category, stored.precision)
        flagged_images = sorted(
            UnitImage.objects.filter(pk__in=stored.flagged_tiles).values_list("image_id", flat=True)
        )
        assert sorted(answer["flagged_images"]) == flagged_images
        # Positions index the task's tile order, the order the worker saw.
        assert [task.tile_order[p] for p in answer["flagged_positions"]] == [
            t for t in task.tile_order if t in set(stored.flagged_tiles)
        ]
        assert len(answer["flagged_positions"]) == len(answer["flagged_files"])

    _, path = make_export("zip")
    flagged_seen = 0
    with zipfile.ZipFile(path) as archive:
        names = set(archive.namelist())
        records = [json.loads(line) for line in archive.read("labels.jsonl").decode().splitlines()]
        for record in records:
            files = {t["file"]: t for t in record["tiles"]}
            assert set(files) <= names
            for name, tile in files.items():
                assert archive.read(name) == f"image {tile['image']}".encode()
            for answer in record["answers"]:
                check(answer)
                # Each flagged file is in the zip and holds the flagged image.
                for name, image in zip(
                    answer["flagged_files"], answer["flagged_images"], strict=True
                ):
                    assert archive.read(name) == f"image {image}".encode()
                    assert files[name]["image"] == image
                flagged_seen += len(answer["flagged_files"])
    # The counted ANSWERS flag 1 + 2 + 3 + 1 tiles (the rejected answer is not exported).
    assert flagged_seen == 7
    jsonl = {(r["layer"], r["unit"]): r for r in records}

    _, path = make_export("csv")
    for row in csv.DictReader(io.StringIO(path.read_text())):
        answers = jsonl[(row["layer"], int(row["unit"]))]["answers"]
        assert row["descriptions"].split(" | ") == [a["description"] for a in answers]
        images = [cell.split() for cell in row["flagged_images"].split(" | ")]
        assert images == [[str(i) for i in a["flagged_images"]] for a in answers]
        files = [cell.split() for cell in row["flagged_files"].split(" | ")]
        assert files == [a["flagged_files"] for a in answers]
        positions = [cell.split() for cell in row["flagged_positions"].split(" | ")]
        assert positions == [[str(p) for p in a["flagged_positions"]] for a in answers]

    api = APIClient()
    api.force_authenticate(make_user("researcher"))
    listed = api.get("/api/crowd/answers/").json()["results"]
    exported = {(a["worker"], a["description"]): a for r in records for a in r["answers"]}
    for item in listed:
        key = (item["worker"], item["concept_text"])
        if key in exported:
            for field in ("flagged_positions", "flagged_images", "flagged_files"):
                assert item[field] == exported[key][field], field
        else:  # the rejected answer: not exported, but mapped the same way in the API
            check({**item, "description": item["concept_text"]})
