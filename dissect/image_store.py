"""Image sets that workers on other hosts can read: with ``CROWDDISSECT_STORAGE=s3`` the files
of an image set (its images, and its pixel-label folder when it has one) are copied into the
store (``storages["imagesets"]``, prefix ``imagesets/<set id>/``) when the set is scanned, and a
worker reads them from there into its own scratch folder (``CROWDDISSECT_SCRATCH_DIR``), once per
host and version of the set, before it decodes them. The registered folder is then only the web
host's source: no worker ever opens it.

The files travel in packs (uncompressed tar objects of up to ``PACK_FILES`` files or
``PACK_BYTES``, ``imagesets/<set id>/packs/00000.tar``...): one request per file cost several
milliseconds of client CPU each, a minute per 10,000 files (a Broden-size set has 300,000) to
copy the set in and the same again on every host that fetches it. Sets mirrored file by file
before the packs (a ``MIRROR.json`` without ``packs``) are still fetched file by file.

With local storage nothing is copied: everything runs on one host and reads the folder as
registered.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tarfile
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from django.conf import settings
from django.core.files.storage import storages

from dissect.artifacts import STORE_ERRORS, store_error, stored_read, stored_save

ALIAS = "imagesets"
MIRROR_FILE = "MIRROR.json"
COPY_THREADS = 8
PACK_FILES = 500  # files per pack: enough packs for the copy threads on a 10,000-file set
PACK_BYTES = 32 * 1024 * 1024  # and at most this much (memory: one pack per copy thread)


class ImageStoreError(OSError):
    """The store does not hold the image set's files; the message says what to do."""


def mirror_enabled() -> bool:
    """Image sets are copied into the store when the files live in an object store."""
    return getattr(settings, "STORAGE_KIND", "local") == "s3"


def _trees(root: Path, labels_dir: Path | None) -> tuple[dict[str, Path], str, str]:
    """The folders to copy ({prefix: folder}), and where root and labels_dir land in the copy.
    A root inside the labels folder (Broden layout, the demo world) is copied once."""
    if labels_dir is not None:
        try:
            inside = root.relative_to(labels_dir).as_posix()
        except ValueError:
            return {"root": root, "labels": labels_dir}, "root", "labels"
        return {"labels": labels_dir}, "labels" if inside == "." else f"labels/{inside}", "labels"
    return {"root": root}, "root", ""


def _files_under(folder: Path) -> list[str]:
    found = []
    for dirpath, _dirnames, filenames in os.walk(folder):
        for filename in filenames:
            path = Path(dirpath) / filename
            if path.is_file():
                found.append(path.relative_to(folder).as_posix())
    return sorted(found)


def image_set_mirror(*, image_set) -> int:
    """Copy the set's files into the store (images listed by its rows; the whole labels folder)
    and write ``MIRROR.json`` last, naming the set's version (``manifest_sha256``) and files.
    Returns the number of files copied; 0 when mirroring is off."""
    if not mirror_enabled():
        return 0
    root = Path(image_set.root)
    labels_dir = Path(image_set.labels_dir) if image_set.labels_dir else None
    trees, root_in, labels_in = _trees(root, labels_dir)
    files: list[tuple[str, Path]] = []
    for prefix, folder in trees.items():
        if prefix == "root":
            rels = [
                p for p in image_set.images.values_list("path", flat=True) if (folder / p).is_file()
            ]
        else:
            rels = _files_under(folder)
        files += [(f"{prefix}/{rel}", folder / rel) for rel in rels]

    packs = _packs(files)
    # Named by the set's version: a host still fetching the previous version never reads a
    # pack of the new one.
    version = (image_set.manifest_sha256 or "unversioned")[:16]
    prefix = f"{image_set.pk}/"

    def copy(numbered: tuple[int, list[tuple[str, Path]]]) -> str:
        number, pack = numbered
        saved = stored_save(ALIAS, f"{prefix}packs/{version}-{number:05d}.tar", _pack_bytes(pack))
        return saved.removeprefix(prefix)  # (a local test store may rename a second copy)

    with ThreadPoolExecutor(max_workers=COPY_THREADS, thread_name_prefix="mirror") as pool:
        names = list(pool.map(copy, enumerate(packs)))
    index = {"version": image_set.manifest_sha256, "root": root_in, "labels": labels_in,
             "files": [key for key, _path in files], "packs": names}  # fmt: skip
    name = f"{image_set.pk}/{MIRROR_FILE}"
    try:
        storages[ALIAS].delete(
            name
        )  # local test stores would otherwise rename; S3 overwrites anyway
    except STORE_ERRORS as exc:
        raise store_error(exc, alias=ALIAS, name=name, doing="replacing") from exc
    stored_save(ALIAS, name, json.dumps(index).encode())
    return len(files)


def _packs(files: list[tuple[str, Path]]) -> list[list[tuple[str, Path]]]:
    """The files in order, cut into packs of at most PACK_FILES files and PACK_BYTES bytes (a
    larger file gets a pack of its own)."""
    packs: list[list[tuple[str, Path]]] = []
    size = 0
    for key, path in files:
        length = path.stat().st_size
        if not packs or len(packs[-1]) >= PACK_FILES or size + length > PACK_BYTES:
            packs.append([])
            size = 0
        packs[-1].append((key, path))
        size += length
    return packs


def _pack_bytes(pack: list[tuple[str, Path]]) -> bytes:
    """An uncompressed tar of the files' contents under their keys (links followed)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for key, path in pack:
            data = path.read_bytes()
            info = tarfile.TarInfo(key)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _unpack(data: bytes, target: Path, *, name: str) -> None:
    """Write a pack's files under ``target``; only regular files with relative names inside it
    are accepted (a pack is read from a store that others may write to)."""
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
            for member in tar:
                parts = Path(member.name).parts
                if not member.isfile() or member.name.startswith("/") or ".." in parts:
                    raise tarfile.TarError(f"unexpected member {member.name!r}")
                path = target / member.name
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(tar.extractfile(member).read())
    except tarfile.TarError as exc:
        raise ImageStoreError(
            f"imagesets/{name} in the object store cannot be read ({exc}); scan the image set "
            "again on a host that has the folder to copy it into the store afresh"
        ) from None


def _cache_root() -> Path:
    return Path(settings.SCRATCH_DIR) / "imagesets"


def image_set_local(*, image_set) -> tuple[str, str]:
    """(root, labels_dir) to read the set's files from on this host: as registered with local
    storage; with the object store, this host's cached copy (fetched on first use)."""
    if not mirror_enabled():
        return image_set.root, image_set.labels_dir
    try:
        index = json.loads(stored_read(ALIAS, f"{image_set.pk}/{MIRROR_FILE}"))
    except FileNotFoundError:
        raise ImageStoreError(
            f"image set {image_set.name}: its files are not in the object store "
            f"(imagesets/{image_set.pk}/{MIRROR_FILE} is missing); scan it again on a host "
            "that has the folder (`python manage.py scan_images` or the image-set page)"
        ) from None
    version = (index.get("version") or "unversioned")[:16]
    cached = _cache_root() / f"{image_set.pk}-{version}"
    if not cached.is_dir():
        _fetch(image_set.pk, index, cached)
    labels = str(cached / index["labels"]) if index.get("labels") else ""
    return str(cached / index["root"]), labels


def _fetch(set_id: int, index: dict, target: Path) -> None:
    """Download into a temporary folder beside ``target`` and rename it into place, so two
    workers on one host never read a half-filled cache."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))

    def fetch_pack(pack: str) -> None:
        name = f"{set_id}/{pack}"
        _unpack(stored_read(ALIAS, name), tmp, name=name)

    def fetch_file(key: str) -> None:  # a set mirrored file by file, before the packs
        path = tmp / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(stored_read(ALIAS, f"{set_id}/{key}"))

    try:
        with ThreadPoolExecutor(max_workers=COPY_THREADS, thread_name_prefix="fetch") as pool:
            if "packs" in index:
                list(pool.map(fetch_pack, index["packs"]))
            else:
                list(pool.map(fetch_file, index["files"]))
        missing = [key for key in index["files"] if not (tmp / key).is_file()]
        if missing:
            raise ImageStoreError(
                f"image set {set_id}: {len(missing)} of its files are missing from its packs in "
                f"the object store (first: {missing[0]}); scan the image set again on a host "
                "that has the folder"
            )
        for prefix in ("root", "labels"):
            (tmp / prefix).mkdir(exist_ok=True)
        os.rename(tmp, target)
    except OSError:
        if target.is_dir():  # another worker on this host finished first: use its copy
            shutil.rmtree(tmp, ignore_errors=True)
            return
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def image_set_localize(image_set) -> None:
    """Point the (unsaved) ``root`` and ``labels_dir`` of this ImageSet instance at this host's
    readable copy, so the pipeline's readers work unchanged; never saved."""
    if image_set is None or not mirror_enabled():
        return
    image_set.root, image_set.labels_dir = image_set_local(image_set=image_set)


def working_folder() -> Path:
    """Where commands write files they register as image sets (the demo world, scan
    manifests): the data directory on local storage; with the object store this host's scratch
    folder, since the set's files are copied into the store and the data directory keeps only
    the database and the secret key."""
    return Path(settings.SCRATCH_DIR if mirror_enabled() else settings.DATA_DIR)
