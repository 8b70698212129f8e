"""Scanning a folder (or a manifest) of images into an image set, with bad files recorded."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from django.db import transaction

from core.audit import audit_record
from core.models import AuditAction
from core.names import name_error
from dissect.image_store import image_set_mirror
from dissect.models import Image, ImageSet
from dissect.run_progress import show_bars
from dissect.services.common import PipelineError, Progress

SCAN_CHUNK = 2000  # image rows written per bulk insert


@dataclass(frozen=True)
class _Scanned:
    path: str
    ok: bool
    reason: str
    width: int
    height: int
    sha1: str
    size_bytes: int
    scene_label: str = ""
    split: str = ""


def stored_path(path: str) -> str:
    """The path an Image row keeps: the path itself, or for a path too long to keep (refused as
    bad by the scanner, with the reason) a shortened form that stays unique and says so."""
    from dissect.images import PATH_MAX_CHARS

    if len(path) <= PATH_MAX_CHARS:
        return path
    digest = hashlib.sha1(path.encode("utf-8", "surrogateescape")).hexdigest()[:16]
    return f"{path[: PATH_MAX_CHARS - 40]}...(too long, sha1 {digest})"


def _count_image_files(root: Path) -> int:
    from dissect.images import IMAGE_EXTENSIONS

    return sum(
        1
        for _dir, _subdirs, files in os.walk(root)
        for name in files
        if name.lower().endswith(IMAGE_EXTENSIONS)
    )


def _scan_records(root: Path, manifest: Path | None) -> tuple[int, Iterable[_Scanned]]:
    """(total, records) for a folder walk or a CSV manifest (paths relative to root)."""
    from dissect.images import (
        ManifestError,
        entry_problem,
        inspect_image,
        read_manifest_csv,
        scan_folder,
    )

    def relative(reason: str) -> str:
        # The engine names the absolute file; the run page lists paths relative to the root.
        return reason.replace(f"{root}/", "", 1)

    if manifest is None:
        total = _count_image_files(root)

        def folder():
            for record in scan_folder(root):
                c = record.check
                yield _Scanned(
                    record.relpath, c.ok, relative(c.reason), c.width, c.height, c.sha1,
                    c.size_bytes,
                )  # fmt: skip

        return total, folder()
    try:
        rows = list(read_manifest_csv(manifest))
    except ManifestError as exc:
        raise PipelineError(str(exc)) from exc

    def listed():
        for row in rows:
            problem = entry_problem(root, row.path)
            if problem == f"{root / row.path}: no such file":
                yield _Scanned(
                    row.path, False, f"{row.path}: listed in {manifest.name} line {row.line} "
                    "but no such file", 0, 0, "", 0,
                )  # fmt: skip
                continue
            if problem:  # a link out of the folder, a loop, a FIFO, a path too long to keep
                yield _Scanned(
                    row.path, False, f"{relative(problem)} (listed in {manifest.name} line "
                    f"{row.line})", 0, 0, "", 0,
                )  # fmt: skip
                continue
            c = inspect_image(root / row.path)
            label = row.extra.get("label") or row.extra.get("class") or row.extra.get("scene", "")
            yield _Scanned(
                row.path, c.ok, relative(c.reason), c.width, c.height, c.sha1, c.size_bytes,
                label[:100], row.extra.get("split", "")[:20],
            )  # fmt: skip

    return len(rows), listed()


def image_set_scan(
    *,
    name: str,
    root: str | Path,
    manifest: str | Path | None = None,
    labels_dir: str | Path = "",
    description: str = "",
    progress: Progress | None = None,
    chunk_size: int = SCAN_CHUNK,
    actor=None,
) -> ImageSet:
    """Scan ``root`` recursively (jpg, png, webp, bmp) or the files a CSV ``manifest`` lists
    (column ``path`` relative to ``root``; optional ``label``/``split``) into Image rows.

    Bad files (empty, truncated, not an image, too many pixels, missing) are kept with
    status 'bad' and the reason, and skipped by runs. Rescanning an existing set updates rows
    in place (paths that vanished are removed), so runs keep their images. Rows are written in
    chunks of ``chunk_size``; ``progress(done, total)`` after each chunk.
    """
    problem = name_error(name, what="image-set name")
    if problem:
        raise PipelineError(problem, field="name")
    root = Path(root).expanduser().resolve()
    if not root.is_dir():
        raise PipelineError(f"image folder {root}: no such folder")
    manifest_path = Path(manifest).expanduser().resolve() if manifest else None
    if manifest_path is not None and not manifest_path.is_file():
        raise PipelineError(f"manifest {manifest_path}: no such file")
    from dissect.images import PATH_MAX_CHARS, long_path_reason

    total, records = _scan_records(root, manifest_path)

    image_set, _ = ImageSet.objects.update_or_create(
        name=name,
        defaults={"root": str(root), "labels_dir": str(labels_dir), "description": description},
    )
    fields = ["sha1", "size_bytes", "width", "height", "status", "reason", "scene_label", "split"]
    # path -> (id, stored values): a rescan rewrites only the rows whose file changed.
    existing = {
        row[0]: (row[1], row[2:])
        for row in image_set.images.values_list("path", "id", *fields).iterator(chunk_size=5000)
    }
    seen: set[str] = set()
    bar = None
    if progress is None and show_bars():
        from tqdm import tqdm

        bar = tqdm(total=total, desc=f"scan {name}", unit="file", leave=False)

    def flush(chunk: list[_Scanned]) -> None:
        rows = [
            Image(
                id=existing[r.path][0] if r.path in existing else None,
                image_set=image_set,
                path=r.path,
                sha1=r.sha1,
                size_bytes=r.size_bytes,
                width=r.width,
                height=r.height,
                status=Image.Status.OK if r.ok else Image.Status.BAD,
                reason="" if r.ok else (r.reason or "unreadable")[:300],
                scene_label=r.scene_label,
                split=r.split,
            )
            for r in chunk
        ]
        # Split before writing: bulk_create fills in ids, and new rows need no update.
        new = [r for r in rows if r.id is None]
        known = [
            r
            for r in rows
            if r.id is not None and tuple(getattr(r, f) for f in fields) != existing[r.path][1]
        ]
        with transaction.atomic():
            Image.objects.bulk_create(new, batch_size=chunk_size)
            if known:
                Image.objects.bulk_update(known, fields, batch_size=500)

    done, chunk = 0, []
    for record in records:
        if len(record.path) > PATH_MAX_CHARS:  # kept as a bad row, never as a truncated "ok"
            record = replace(
                record, path=stored_path(record.path), ok=False,
                reason=record.reason if not record.ok else long_path_reason(record.path),
            )  # fmt: skip
        if record.path in seen:
            continue
        seen.add(record.path)
        chunk.append(record)
        if len(chunk) >= chunk_size:
            flush(chunk)
            done += len(chunk)
            chunk = []
            if progress is not None:
                progress(done, total)
            if bar is not None:
                bar.update(done - bar.n)
    if chunk:
        flush(chunk)
        done += len(chunk)
    if bar is not None:
        bar.close()
    if progress is not None:
        progress(done, max(total, done))

    gone = [image_id for path, (image_id, _values) in existing.items() if path not in seen]
    for start in range(0, len(gone), chunk_size):
        Image.objects.filter(id__in=gone[start : start + chunk_size]).delete()
    with transaction.atomic(durable=True):
        image_set = image_set_refresh_summary(image_set=image_set)
        audit_record(
            actor=actor, action=AuditAction.IMAGE_SET_SCAN, target=image_set,
            data={"root": str(root), "images": image_set.image_count, "bad": image_set.bad_count,
                  "removed": len(gone)},
        )  # fmt: skip
    # With the object store, workers on other hosts read the set's files from there.
    image_set_mirror(image_set=image_set)
    return image_set


def image_set_refresh_summary(*, image_set: ImageSet) -> ImageSet:
    """Recount ok/bad images and recompute ``manifest_sha256`` = sha256 of the sorted
    ``path<TAB>sha1`` lines of the usable images (the set's identity)."""
    digest = hashlib.sha256()
    ok = image_set.images.filter(status=Image.Status.OK).order_by("path")
    for path, sha1 in ok.values_list("path", "sha1").iterator(chunk_size=SCAN_CHUNK):
        digest.update(f"{path}\t{sha1}\n".encode())
    image_set.image_count = ok.count()
    image_set.bad_count = image_set.images.filter(status=Image.Status.BAD).count()
    image_set.manifest_sha256 = digest.hexdigest()
    image_set.save(update_fields=["image_count", "bad_count", "manifest_sha256"])
    return image_set


def image_mark_bad(*, image_id: int, reason: str) -> None:
    """A file that scanned fine but failed to decode during a run: skip it from now on."""
    Image.objects.filter(pk=image_id).update(status=Image.Status.BAD, reason=reason[:300] or "bad")


def import_broden(*, root: str | Path, name: str, description: str = "", progress=None) -> ImageSet:
    """Check a Broden-layout dataset (``dissect.broden.read_broden``) and scan its images
    into image set ``name`` with ``labels_dir`` set, so runs on it can compute automatic labels.
    The scan manifest (path, split) is written under DATA_DIR/broden, never into the dataset."""
    import csv

    from dissect.broden import check_label_maps, read_broden

    problem = name_error(name, what="image-set name")
    if problem:  # before the name becomes the manifest's file name
        raise PipelineError(problem, field="name")
    dataset = read_broden(root)
    check_label_maps(dataset)  # every map a PNG of the declared size with known labels
    from dissect.image_store import working_folder

    manifest_dir = working_folder() / "broden"
    manifest_dir.mkdir(parents=True, exist_ok=True)
    manifest = manifest_dir / f"{name}.csv"
    with open(manifest, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "split"])
        for row in dataset.rows:
            writer.writerow([row.image, row.split])
    return image_set_scan(
        name=name,
        root=dataset.images_dir,
        manifest=manifest,
        labels_dir=dataset.root.resolve(),
        description=description or f"Broden-layout dataset at {dataset.root.resolve()}",
        progress=progress,
    )
