"""Exports of labeled units: streamed writers (never the whole dataset in memory) and the service
that runs an Export row (status, progress, checksum, audit).

Formats (Export.Kind):
- jsonl: one line per labeled unit: network, layer, unit, concept, category, precision,
  tile_precision, agreement, detector flag, answer count, the crowd model's verdict (when fitted)
  and every counted answer with the worker's pseudonym, `simulated` (true for the demo's
  simulated sim-… workers), its normalized concept (merges applied) and timings; each answer's "does not fit" tiles as positions in its task's tile order
  (`flagged_positions`), dataset image ids (`flagged_images`) and the zip's tile file names
  (`flagged_files`); each unit lists its `tiles` (file, image id, image path, kind, rank);
- csv: one row per labeled unit (the same fields, `simulated_answers` counting the simulated
  workers' answers; answers as their descriptions joined by " | ",
  their flagged positions, images and files likewise, space-separated within an answer);
- tally: NetDissect-style tally CSV (layer, unit numbered from 1, category, label, score = precision);
- milan: per-unit descriptions in the MILAN layout: a JSON list of {layer, unit, descriptions};
- zip: labels.jsonl + tiles/<layer>/<unit>/<kind>-<rank>.<ext> + datacard.json + README.md.
"""

import hashlib
import io
import json
import secrets
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from annotate.labels.aggregation import counted_statuses
from core import csv_safe

Progress = Callable[[int, int], None]
EXTENSIONS = {"jsonl": "jsonl", "csv": "csv", "tally": "csv", "milan": "json", "zip": "zip"}
CSV_FIELDS = [
    "network",
    "run",
    "layer",
    "unit",
    "concept",
    "category",
    "precision",
    "tile_precision",
    "agreement",
    "is_detector",
    "answer_count",
    "simulated_answers",
    "descriptions",
    "flagged_positions",
    "flagged_images",
    "flagged_files",
]
# Within a CSV cell: answers are separated by " | ", an answer's flagged tiles by spaces.
ANSWER_SEPARATOR = " | "


class ExportError(ValueError):
    """The export cannot be made as asked (the message says what to change)."""


# --- Reading, in chunks ----------------------------------------------------------------------


def export_labels_queryset(*, run, layers: list[str] | None = None, detectors_only: bool = False):
    """The crowd labels an export covers, in layer and unit order."""
    from annotate.labels.models import UnitLabel

    labels = UnitLabel.objects.filter(source=UnitLabel.Source.CROWD, unit__layer__run=run)
    if layers:
        labels = labels.filter(unit__layer__name__in=layers)
    if detectors_only:
        labels = labels.filter(is_detector=True)
    return labels.order_by("unit__layer__order", "unit__index")


def iter_unit_records(
    *,
    run,
    layers: list[str] | None = None,
    detectors_only: bool = False,
    chunk_size: int = 500,
    progress: Progress | None = None,
) -> Iterator[dict]:
    """Yield one plain dict per labeled unit with its answers; reads `chunk_size` units at a time."""
    from annotate.crowd.models import Answer
    from annotate.crowd.selectors import flagged_tiles_described, tile_export_name, tile_refs
    from annotate.labels.aggregation import merge_table
    from core.concepts.normalize import resolve_merge
    from dissect.models import UnitImage

    merges = merge_table()
    labels = export_labels_queryset(run=run, layers=layers, detectors_only=detectors_only)
    total = labels.count()
    network = run.network.name
    fields = (
        "unit_id",
        "unit__layer__name",
        "unit__index",
        "concept_text",
        "category",
        "precision",
        "tile_precision",
        "agreement",
        "is_detector",
        "answer_count",
        "details",
    )
    done = 0
    chunk: list[tuple] = []

    def flush(rows: list[tuple]) -> Iterator[dict]:
        answers: dict[int, list[dict]] = {}
        unit_ids = [row[0] for row in rows]
        tiles: dict[int, list[dict]] = {}
        for unit_id, image, image_path, kind, rank, layer, index, tile_path in (
            UnitImage.objects.filter(unit_id__in=unit_ids)
            .exclude(tile_path="")
            .order_by("unit_id", "kind", "rank")
            .values_list(
                "unit_id",
                "image_id",
                "image__path",
                "kind",
                "rank",
                "unit__layer__name",
                "unit__index",
                "tile_path",
            )
        ):
            tiles.setdefault(unit_id, []).append(
                {
                    "file": tile_export_name(
                        layer=layer, unit=index, kind=kind, rank=rank, tile_path=tile_path
                    ),
                    "image": image,
                    "image_path": image_path,
                    "kind": kind,
                    "rank": rank,
                }
            )
        rows_of_answers = list(
            Answer.objects.filter(
                assignment__task__unit_id__in=unit_ids,
                assignment__status__in=counted_statuses(),
            )
            .order_by("id")
            .values(
                "assignment__task__unit_id",
                "assignment__worker__pseudonym",
                "assignment__worker__source",
                "assignment__task__campaign_id",
                "concept_text",
                "concept__name",
                "category",
                "precision",
                "flagged_tiles",
                "assignment__task__tile_order",
                "assignment__accepted_at",
                "assignment__submitted_at",
                "assignment__active_seconds",
            )
        )
        refs = tile_refs(i for r in rows_of_answers for i in (r["flagged_tiles"] or []))
        for r in rows_of_answers:
            answers.setdefault(r["assignment__task__unit_id"], []).append(
                {
                    "worker": r["assignment__worker__pseudonym"],
                    # The demo's simulated crowd (sim-… workers), never people.
                    "simulated": r["assignment__worker__source"] == "simulated",
                    "campaign": r["assignment__task__campaign_id"],
                    "description": r["concept_text"],
                    "concept": resolve_merge(r["concept__name"], merges)
                    if r["concept__name"]
                    else None,
                    "category": r["category"],
                    "precision": r["precision"],
                    "shown_tiles": len(r["assignment__task__tile_order"] or []),
                    **flagged_tiles_described(
                        tile_order=r["assignment__task__tile_order"],
                        flagged_tiles=r["flagged_tiles"],
                        refs=refs,
                    ),
                    "accepted_at": _iso(r["assignment__accepted_at"]),
                    "submitted_at": _iso(r["assignment__submitted_at"]),
                    "active_seconds": r["assignment__active_seconds"],
                }
            )
        for row in rows:
            yield {
                "network": network,
                "run": run.pk,
                "layer": row[1],
                "unit": row[2],
                "concept": row[3],
                "category": row[4],
                "precision": row[5],
                "tile_precision": row[6],
                "agreement": row[7],
                "is_detector": row[8],
                "answer_count": row[9],
                "crowd_model": (row[10] or {}).get("model"),
                "answers": answers.get(row[0], []),
                "tiles": tiles.get(row[0], []),
            }

    for row in labels.values_list(*fields).iterator(chunk_size=chunk_size):
        chunk.append(row)
        if len(chunk) >= chunk_size:
            yield from flush(chunk)
            done += len(chunk)
            chunk = []
            if progress:
                progress(done, total)
    if chunk:
        yield from flush(chunk)
        done += len(chunk)
    if progress:
        progress(done, total)


def _iso(value) -> str | None:
    return value.isoformat() if value else None


# --- Writers (text streams) ------------------------------------------------------------------


def write_jsonl(records: Iterator[dict], out: io.TextIOBase) -> int:
    count = 0
    for record in records:
        out.write(json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n")
        count += 1
    return count


def write_csv(records: Iterator[dict], out: io.TextIOBase) -> int:
    writer = csv_safe.dict_writer(out, CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    count = 0
    for record in records:
        row = {k: record.get(k) for k in CSV_FIELDS}
        answers = record["answers"]
        row["descriptions"] = ANSWER_SEPARATOR.join(a["description"] for a in answers)
        row["simulated_answers"] = sum(1 for a in answers if a.get("simulated"))
        for field in ("flagged_positions", "flagged_images", "flagged_files"):
            row[field] = ANSWER_SEPARATOR.join(" ".join(map(str, a[field])) for a in answers)
        writer.writerow(row)
        count += 1
    return count


def write_tally(records: Iterator[dict], out: io.TextIOBase) -> int:
    """NetDissect's tally.csv columns (unit numbered from 1, score) with the layer first."""
    writer = csv_safe.writer(out, lineterminator="\n")
    writer.writerow(["layer", "unit", "category", "label", "score", "agreement", "answers"])
    count = 0
    for r in records:
        writer.writerow(
            [
                r["layer"],
                r["unit"] + 1,
                r["category"],
                r["concept"],
                "" if r["precision"] is None else f"{r['precision']:.6f}",
                "" if r["agreement"] is None else f"{r['agreement']:.6f}",
                r["answer_count"],
            ]
        )
        count += 1
    return count


def write_milan(records: Iterator[dict], out: io.TextIOBase) -> int:
    """A JSON list of {"layer", "unit", "descriptions"}, written element by element."""
    out.write("[\n")
    count = 0
    for r in records:
        item = {
            "layer": r["layer"],
            "unit": r["unit"],
            "descriptions": [a["description"] for a in r["answers"] if a["description"]],
        }
        out.write(("," if count else "") + json.dumps(item, ensure_ascii=False) + "\n")
        count += 1
    out.write("]\n")
    return count


WRITERS = {"jsonl": write_jsonl, "csv": write_csv, "tally": write_tally, "milan": write_milan}


# --- Data card and zip -----------------------------------------------------------------------


def data_card(*, run, parameters: dict, export_id: int | None = None) -> dict:
    """Provenance of an export: network weights hash, image-set manifest hash, run and campaign
    parameters, code version and dates."""
    from dissect.services import code_version

    network = run.network
    image_set = run.image_set
    campaigns = [
        {
            "id": c.pk,
            "name": c.name,
            "status": c.status,
            "tiles_per_task": c.tiles_per_task,
            "controls_per_task": c.controls_per_task,
            "redundancy": c.redundancy,
            "gold_rate": c.gold_rate,
            "reward_cents": c.reward_cents,
            "seed": c.seed,
            "created_at": _iso(c.created_at),
        }
        for c in run.campaigns.order_by("id")
    ]
    from annotate.labels.aggregation import detector_min_agreeing, detector_precision

    return {
        "export": {"id": export_id, "parameters": parameters, "created_at": _iso(timezone.now())},
        "network": {
            "name": network.name,
            "arch": network.arch,
            "source": network.source,
            "training_data": network.training_data,
            "weights_sha256": network.weights_sha256 or None,
        },
        "image_set": (
            {
                "name": image_set.name,
                "manifest_sha256": image_set.manifest_sha256 or None,
                "images": image_set.image_count,
            }
            if image_set
            else None
        ),
        "run": {
            "id": run.pk,
            "status": run.status,
            "layers": run.layers,
            "parameters": run.parameters,
            "seed": run.seed,
            "code_version": run.code_version or None,
            "created_at": _iso(run.created_at),
            "finished_at": _iso(run.finished_at),
        },
        "campaigns": campaigns,
        "aggregation": {
            "consensus": "plurality of normalized concepts (ties: mean precision, vocabulary "
            "concept, earliest answer, alphabetical)",
            "detector_precision": detector_precision(),
            "detector_min_agreeing": detector_min_agreeing(),
        },
        "code_version": code_version(),
    }


def write_zip(*, run, parameters: dict, path: Path, export_id: int | None, progress=None) -> int:
    """labels.jsonl, the tiles of every exported unit, datacard.json and a README, one entry at a
    time (zip entries are streamed to disk)."""
    from django.core.files.storage import default_storage

    from annotate.crowd.selectors import tile_export_name
    from dissect.models import UnitImage

    layers, detectors_only = parameters.get("layers"), parameters.get("detectors_only", False)
    count = 0
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        with archive.open("labels.jsonl", "w") as raw:
            text = io.TextIOWrapper(raw, encoding="utf-8", newline="\n")
            count = write_jsonl(
                iter_unit_records(
                    run=run, layers=layers, detectors_only=detectors_only, progress=progress
                ),
                text,
            )
            text.flush()
            text.detach()
        tiles = (
            UnitImage.objects.filter(
                unit__labels__in=export_labels_queryset(
                    run=run, layers=layers, detectors_only=detectors_only
                )
            )
            .exclude(tile_path="")
            .values_list("unit__layer__name", "unit__index", "kind", "rank", "tile_path")
            .order_by("unit__layer__order", "unit__index", "kind", "rank")
        )
        tile_count = 0
        for layer, unit, kind, rank, tile_path in tiles.iterator(chunk_size=2000):
            if not default_storage.exists(tile_path):
                continue
            name = tile_export_name(
                layer=layer, unit=unit, kind=kind, rank=rank, tile_path=tile_path
            )
            with default_storage.open(tile_path, "rb") as source:
                with archive.open(name, "w") as target:
                    for block in iter(lambda s=source: s.read(1 << 16), b""):
                        target.write(block)
            tile_count += 1
        card = data_card(run=run, parameters=parameters, export_id=export_id)
        card["contents"] = {"units": count, "tiles": tile_count}
        archive.writestr("datacard.json", json.dumps(card, indent=2, ensure_ascii=False))
        archive.writestr("README.md", _readme(card))
    return count


def _readme(card: dict) -> str:
    net, run = card["network"], card["run"]
    lines = [
        f"# Labeled units of {net['name']} (run {run['id']})",
        "",
        f"- units: {card['contents']['units']}, tiles: {card['contents']['tiles']}",
        f"- network weights sha256: {net['weights_sha256'] or 'n/a (no weights)'}",
        "- image set manifest sha256: "
        + ((card["image_set"] or {}).get("manifest_sha256") or "n/a (no image set)"),
        f"- code version: {card['code_version']}",
        f"- exported: {card['export']['created_at']}",
        "",
        "labels.jsonl: one unit per line (concept, category, precision, agreement, detector,",
        "answers with pseudonymous worker ids and timings). tiles/<layer>/<unit>/: the tiles shown",
        "to workers (top = the unit's top images, control = planted low-scoring images).",
        "Each answer names the tiles its worker marked as not fitting three ways: flagged_positions",
        "(0-based, in the order that task showed its tiles), flagged_images (image ids of the",
        "image set) and flagged_files (these tiles/ file names). Each unit's `tiles` maps every",
        "file to its image id, image path, kind and rank.",
        "datacard.json: the full provenance.",
    ]
    return "\n".join(lines) + "\n"


# --- The service -----------------------------------------------------------------------------


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


EXPORTS_PREFIX = "exports"


def exports_dir() -> Path:
    """Where an export is written before it goes to the media storage: this host's scratch
    folder (zip entries need a seekable local file)."""
    return Path(settings.SCRATCH_DIR) / "exports"


def export_storage_name(export) -> str:
    """The export's name in ``default_storage`` (``exports/<id>-<token>.<ext>``): private, never
    served as a folder; the only way out is the audited download view."""
    return f"{EXPORTS_PREFIX}/{stored_name(export)}"


def stored_name(export) -> str:
    """An export's file name on disk: its id and a random token, nothing from user input (a
    name with ``/`` or ``..`` never reaches the file system) and nothing guessable."""
    return f"{export.pk}-{secrets.token_urlsafe(24)}.{EXTENSIONS[export.kind]}"


def download_name(export) -> str:
    """The file name a download is offered under: id, network (as a slug), kind, date."""
    from django.utils.text import slugify

    network = slugify(str((export.parameters or {}).get("network", ""))) or "network"
    stamp = export.created_at.strftime("%Y%m%d-%H%M%S")
    return f"{export.pk}-{network}-{export.kind}-{stamp}.{EXTENSIONS[export.kind]}"


@transaction.atomic
def export_create(*, kind: str, parameters: dict, actor, enqueue: bool = True):
    """Create a pending Export row (audited) and queue its job after commit.

    `parameters`: network (name, required), run (id, optional: latest labeled run),
    layers (list, optional), detectors_only (bool).
    """
    from annotate.labels.models import Export
    from annotate.labels.reports import ReportError, run_for_network, run_layers
    from core.audit import audit_record
    from core.models import AuditAction

    if kind not in EXTENSIONS:
        raise ExportError(f"kind: {kind!r} is not one of {', '.join(EXTENSIONS)}")
    network = (parameters or {}).get("network")
    if not network:
        raise ExportError("network: name the network whose labeled units to export")
    try:
        run = run_for_network(network=network, run_id=parameters.get("run"))
        layers = run_layers(run=run, layers=parameters.get("layers") or None)
    except ReportError as exc:
        raise ExportError(str(exc)) from None
    clean = {
        "network": network,
        "run": run.pk,
        "layers": layers if parameters.get("layers") else [],
        "detectors_only": bool(parameters.get("detectors_only")),
    }
    export = Export.objects.create(
        kind=kind,
        parameters=clean,
        created_by=actor if getattr(actor, "is_authenticated", False) else None,
    )
    audit_record(
        actor=actor, action=AuditAction.EXPORT_CREATE, target=export, data={"kind": kind, **clean}
    )
    if enqueue:
        from annotate.labels.tasks import run_export

        transaction.on_commit(lambda: run_export.delay(export.pk))
    return export


def export_run(*, export_id: int):
    """Write an Export's file; idempotent (a done export is left alone, a failed or interrupted
    one is written again from the start)."""
    from django.core.files import File
    from django.core.files.storage import default_storage

    from annotate.labels.models import Export
    from core.audit import audit_record
    from core.models import AuditAction
    from dissect.models import DissectionRun

    export = Export.objects.get(pk=export_id)
    if export.status == Export.Status.DONE and default_storage.exists(export.file_path):
        return export
    export.status, export.error = Export.Status.RUNNING, ""
    export.save(update_fields=["status", "error"])
    params = export.parameters
    run = DissectionRun.objects.select_related("network", "image_set").get(pk=params["run"])
    folder = exports_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / stored_name(export)
    partial = path.with_suffix(path.suffix + ".part")

    def progress(done: int, total: int) -> None:
        Export.objects.filter(pk=export.pk).update(progress={"done": done, "total": total})

    try:
        if export.kind == "zip":
            count = write_zip(
                run=run, parameters=params, path=partial, export_id=export.pk, progress=progress
            )
        else:
            records = iter_unit_records(
                run=run,
                layers=params.get("layers") or None,
                detectors_only=params.get("detectors_only", False),
                progress=progress,
            )
            with open(partial, "w", encoding="utf-8", newline="\n") as text:
                count = WRITERS[export.kind](records, text)
        partial.replace(path)
    except Exception as exc:
        partial.unlink(missing_ok=True)
        export.status, export.error = Export.Status.FAILED, f"{type(exc).__name__}: {exc}"
        export.finished_at = timezone.now()
        export.save(update_fields=["status", "error", "finished_at"])
        raise
    try:
        with open(path, "rb") as handle:
            export.file_path = default_storage.save(export_storage_name(export), File(handle))
        export.sha256 = sha256_of(path)
        export.size_bytes = path.stat().st_size
    finally:
        path.unlink(missing_ok=True)
    export.status = Export.Status.DONE
    export.finished_at = timezone.now()
    export.progress = {"done": count, "total": count}
    with transaction.atomic():
        export.save()
        audit_record(
            actor=export.created_by,
            action=AuditAction.EXPORT_DONE,
            target=export,
            data={"sha256": export.sha256, "units": count, "bytes": export.size_bytes},
        )
    return export
