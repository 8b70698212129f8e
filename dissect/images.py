"""Image files: checking, decoding to RGB, folder scanning, CSV manifests, and a torch
Dataset/DataLoader that decodes and preprocesses with workers, skipping files that fail.

No Django here: callers turn the records into rows.
"""

from __future__ import annotations

import csv
import errno
import hashlib
import os
import stat
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

__all__ = [
    "IMAGE_EXTENSIONS",
    "DEFAULT_MAX_PIXELS",
    "ImageCheck",
    "ImageRecord",
    "ManifestRow",
    "ManifestError",
    "BadImageError",
    "inspect_image",
    "load_rgb",
    "scan_folder",
    "entry_problem",
    "long_path_reason",
    "PATH_MAX_CHARS",
    "read_manifest_csv",
    "network_view",
    "preprocess_transform",
    "ImageFileDataset",
    "FailedImage",
    "iter_image_batches",
]

if TYPE_CHECKING:
    import torch

# torch is imported inside the functions that need it: scanning and upload checks run in the web
# process, which must not pay for importing torch.

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp")
DEFAULT_MAX_PIXELS = 40_000_000  # decompression-bomb guard: refuse images above 40 megapixels

# Never decode a truncated file silently as a half-grey picture.
ImageFile.LOAD_TRUNCATED_IMAGES = False


class BadImageError(ValueError):
    """The file is not a usable image; ``str(exc)`` is a human reason naming the file."""


@dataclass(frozen=True)
class ImageCheck:
    """Result of ``inspect_image``: ``ok`` False means skip the file; ``reason`` says why."""

    ok: bool
    reason: str
    width: int = 0
    height: int = 0
    sha1: str = ""
    size_bytes: int = 0


@dataclass(frozen=True)
class ImageRecord:
    """One file found by ``scan_folder``: ``relpath`` uses '/' and is relative to the root."""

    relpath: str
    check: ImageCheck


def _sha1_file(path: Path) -> str:
    digest = hashlib.sha1(usedforsecurity=False)
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _open_checked(path: Path, max_pixels: int) -> Image.Image:
    """Open (lazily) and reject bombs before any pixel is decoded."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise BadImageError(f"{path}: cannot read the file ({exc.strerror or exc})") from exc
    if size == 0:
        raise BadImageError(f"{path}: the file is empty (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(path)
    except UnidentifiedImageError as exc:
        raise BadImageError(f"{path}: not an image file Pillow can read") from exc
    except Image.DecompressionBombError as exc:
        raise BadImageError(f"{path}: image too large (decompression-bomb guard)") from exc
    except OSError as exc:
        raise BadImageError(f"{path}: cannot open the image ({exc})") from exc
    width, height = img.size
    if width * height > max_pixels:
        img.close()
        raise BadImageError(
            f"{path}: image is {width}x{height} = {width * height / 1e6:.1f} megapixels, over "
            f"the {max_pixels / 1e6:.0f} megapixel limit (raise max_pixels if it is genuine)"
        )
    return img


def _decode(img: Image.Image, path: Path) -> Image.Image:
    try:
        img.load()
    except (OSError, SyntaxError, ValueError) as exc:
        reason = "truncated or corrupt image data" if "truncated" in str(exc) else str(exc)
        raise BadImageError(f"{path}: {reason}") from exc
    return img


def load_rgb(path: str | Path, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Decode an image file to an upright RGB ``PIL.Image``.

    Applies the EXIF orientation; converts grayscale, palette and CMYK to RGB; composites any
    alpha channel on white. Raises ``BadImageError`` with a human reason for empty, truncated,
    non-image and too-large (over ``max_pixels``) files.
    """
    path = Path(path)
    with _open_checked(path, max_pixels) as img:
        _decode(img, path)
        try:
            img = ImageOps.exif_transpose(img)
        except Exception:  # noqa: BLE001 - a broken EXIF block must not lose the picture
            pass
        return _to_rgb(img)


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode == "P":
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "RGB" and "transparency" in img.info):
        img = img.convert("RGBA")
        background = Image.new("RGBA", img.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, img).convert("RGB")
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        img = img.point(lambda v: v / 256).convert("L")  # 16-bit gray -> 8-bit
    return img.convert("RGB")


def inspect_image(
    path: str | Path, *, max_pixels: int = DEFAULT_MAX_PIXELS, decode: bool = True
) -> ImageCheck:
    """Check one file: ``ImageCheck(ok, reason, width, height, sha1, size_bytes)``.

    Width/height are after EXIF orientation. ``decode=False`` only reads the header (fast,
    misses truncation).
    """
    path = Path(path)
    try:
        size_bytes = path.stat().st_size
    except OSError as exc:
        return ImageCheck(False, f"{path}: cannot read the file ({exc.strerror or exc})")
    sha1 = ""
    try:
        sha1 = _sha1_file(path)
        with _open_checked(path, max_pixels) as img:
            if decode:
                _decode(img, path)
            width, height = img.size
            if _exif_swaps_axes(img):
                width, height = height, width
    except BadImageError as exc:
        return ImageCheck(False, str(exc), sha1=sha1, size_bytes=size_bytes)
    except OSError as exc:
        return ImageCheck(False, f"{path}: {exc}", sha1=sha1, size_bytes=size_bytes)
    return ImageCheck(True, "", width, height, sha1, size_bytes)


def _exif_swaps_axes(img: Image.Image) -> bool:
    try:
        orientation = img.getexif().get(0x0112, 1)
    except Exception:  # noqa: BLE001
        return False
    return orientation in (5, 6, 7, 8)


# The longest relative path an Image row keeps (dissect.models.Image.path): longer paths are
# refused with the reason, never truncated into a path that names another file (or none).
PATH_MAX_CHARS = 500


def long_path_reason(relpath: str) -> str | None:
    """The refusal for a relative path too long to store, or None."""
    if len(relpath) <= PATH_MAX_CHARS:
        return None
    return (
        f"the path is {len(relpath)} characters, more than the {PATH_MAX_CHARS} an image path "
        "may have: shorten the folder or file names"
    )


def _kind_of(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISDIR(mode):
        return "a folder"
    return "not a regular file"


def _resolve_link(path: Path) -> tuple[Path | None, str | None]:
    """(target, None) for a symbolic link that resolves, or (None, reason) for a loop or a
    dangling link. Never opens the target."""
    try:
        return path.resolve(strict=True), None
    except FileNotFoundError:
        try:
            target = os.readlink(path)
        except OSError:
            target = "?"
        return None, f"a dangling symbolic link (its target {target} does not exist)"
    except RuntimeError:  # Python < 3.13: "Symlink loop from ..."
        return None, "a symbolic link loop (the link points back at itself)"
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return None, "a symbolic link loop (the link points back at itself)"
        return None, f"a symbolic link that cannot be followed ({exc.strerror or exc})"


def entry_problem(root: Path, relpath: str) -> str | None:
    """Why the entry ``root/relpath`` cannot be read as an image file, or None. Refused: paths
    too long to store, symbolic links that loop, dangle or point outside ``root`` (a link is
    followed only to a regular file inside the folder), and anything that is not a regular
    file (named pipes, sockets, devices, folders). Never opens the file, so a FIFO never blocks.

    ``root`` should be resolved (``Path.resolve()``); reasons name ``root/relpath``."""
    path = root / relpath
    where = f"{path}:"
    reason = long_path_reason(relpath)
    if reason:
        return reason[0].upper() + reason[1:]  # the path itself would not fit in a reason
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return f"{where} no such file"
    except OSError as exc:
        return f"{where} cannot read the file ({exc.strerror or exc})"
    if stat.S_ISLNK(info.st_mode):
        target, reason = _resolve_link(path)
        if reason:
            return f"{where} {reason}"
        if target != root and root not in target.parents:
            return (
                f"{where} a symbolic link to {target}, outside the image folder: copy the file "
                "into the folder instead"
            )
        try:
            info = os.stat(target)
        except OSError as exc:
            return f"{where} cannot read the link's target ({exc.strerror or exc})"
    if not stat.S_ISREG(info.st_mode):
        return f"{where} {_kind_of(info.st_mode)}, not an image file"
    return None


def scan_folder(
    root: str | Path,
    *,
    progress: Callable[[int, int], None] | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    decode: bool = True,
) -> Iterator[ImageRecord]:
    """Yield an ``ImageRecord`` for every .jpg/.jpeg/.png/.webp/.bmp entry under ``root``
    (recursive, case-insensitive extensions), in sorted relative-path order.

    Entries that cannot be read as images are yielded too, with ``check.ok`` False and the
    reason (``entry_problem``): symbolic links that loop, dangle or leave the folder, named
    pipes and other special files, paths too long to store, and folders that cannot be listed
    or that a link would enter twice (loops) or outside the folder. Symbolic links to files and
    folders inside the folder are followed (each folder once).

    Streams: only one directory listing is held at a time, so 100k files are fine.
    ``progress(done, total)`` is called after each file (with a progress callback, a quick
    listing pass counts the files first).
    """
    root = Path(root).resolve()
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: not a folder")
    total = sum(1 for _ in _walk_sorted(root, "", set())) if progress is not None else 0
    done = 0
    for relpath, problem in _walk_sorted(root, "", set()):
        problem = problem or entry_problem(root, relpath)
        if problem:
            check = ImageCheck(False, problem)
        else:
            check = inspect_image(root / relpath, max_pixels=max_pixels, decode=decode)
        done += 1
        if progress is not None:
            progress(done, total)
        yield ImageRecord(relpath, check)


def _walk_sorted(root: Path, prefix: str, visited: set[Path]) -> Iterator[tuple[str, str | None]]:
    """(relpath, None) for each image entry to check, (relpath, reason) for a folder that is
    refused; sorting each directory and treating a folder 'a' as 'a/' gives global path order.
    ``visited`` holds the real paths of the folders entered (a link back is a loop)."""
    folder = root / prefix if prefix else root
    try:
        real = folder.resolve()
        visited.add(real)
        entries = list(os.scandir(folder))
    except OSError as exc:
        yield prefix.rstrip("/"), f"{folder}: cannot list the folder ({exc.strerror or exc})"
        return
    keyed: list[tuple[str, str | None, bool]] = []
    for entry in entries:
        rel = f"{prefix}{entry.name}"
        image_name = entry.name.lower().endswith(IMAGE_EXTENSIONS)
        try:
            if entry.is_dir(follow_symlinks=False):
                keyed.append((rel + "/", None, True))
                continue
            if not entry.is_symlink():
                if image_name:  # regular or special file: entry_problem tells them apart
                    keyed.append((rel, None, False))
                continue
        except OSError as exc:
            keyed.append(
                (rel, f"{root / rel}: cannot read the entry ({exc.strerror or exc})", False)
            )
            continue
        target, reason = _resolve_link(Path(entry.path))
        if target is not None and target.is_dir():
            if target != root and root not in target.parents:
                keyed.append((rel, f"{root / rel}: a symbolic link to the folder {target}, "
                              "outside the image folder: not followed", False))  # fmt: skip
            elif target in visited or target == real or target in real.parents:
                keyed.append((rel, f"{root / rel}: a symbolic link loop (the folder links back "
                              f"to {target}): not followed", False))  # fmt: skip
            else:
                keyed.append((rel + "/", None, True))
        elif image_name or (reason and "loop" in reason):
            # Links to files, and loops whatever their name, are judged by entry_problem;
            # a dangling link without an image extension is not an image anyone meant.
            keyed.append((rel, None, False))
    del entries
    for rel, reason, is_dir in sorted(keyed, key=lambda k: k[0]):
        if is_dir:
            yield from _walk_sorted(root, rel, visited)
        else:
            yield rel, reason


class ManifestError(ValueError):
    """A CSV manifest problem; the message names the file and the row."""


@dataclass(frozen=True)
class ManifestRow:
    """One manifest line: ``path`` as written, ``line`` its line number, ``extra`` the other
    columns (e.g. a label or split)."""

    line: int
    path: str
    extra: dict[str, str] = field(default_factory=dict)


def read_manifest_csv(path: str | Path) -> Iterator[ManifestRow]:
    """Stream rows of a CSV manifest with a header containing ``path`` (other columns are kept
    in ``extra``). Raises ``ManifestError`` for a missing column, an empty path, an absolute or
    '..' path, or a duplicate path, naming the line."""
    path = Path(path)
    try:
        fh = open(path, newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise ManifestError(f"{path}: cannot read the manifest ({exc.strerror or exc})") from exc
    with fh:
        reader = csv.DictReader(fh)
        fields = [f.strip() for f in reader.fieldnames or []]
        if "path" not in fields:
            raise ManifestError(
                f"{path}: line 1: the header needs a 'path' column (found: {', '.join(fields) or 'nothing'})"
            )
        reader.fieldnames = fields
        seen: set[str] = set()
        for row in reader:
            line = reader.line_num
            if None in row:
                raise ManifestError(f"{path}: line {line}: more values than header columns")
            value = (row.get("path") or "").strip()
            if not value:
                raise ManifestError(f"{path}: line {line}: the 'path' value is empty")
            if value.startswith(("/", "\\")) or ".." in Path(value).parts:
                raise ManifestError(
                    f"{path}: line {line}: {value!r} must be relative to the image folder "
                    "(no leading '/' and no '..')"
                )
            if value in seen:
                raise ManifestError(f"{path}: line {line}: {value!r} is listed twice")
            seen.add(value)
            extra = {k: (v or "") for k, v in row.items() if k != "path"}
            yield ManifestRow(line, value, extra)


# -- preprocessing ----------------------------------------------------------------------------


def network_view(image: Image.Image, preprocessing: dict) -> Image.Image:
    """The geometric part of preprocessing: exactly the RGB pixels the network sees
    (``input_size`` square). Tiles and masks are drawn on this view so they align with maps."""
    size = int(preprocessing["input_size"])
    if preprocessing.get("crop", "center") == "none":
        return image.resize((size, size), Image.BILINEAR)
    resize = int(preprocessing.get("resize", size))
    w, h = image.size
    scale = resize / min(w, h)
    new_w, new_h = max(size, round(w * scale)), max(size, round(h * scale))
    image = image.resize((new_w, new_h), Image.BILINEAR)
    left, top = (new_w - size) // 2, (new_h - size) // 2
    return image.crop((left, top, left + size, top + size))


def preprocess_transform(preprocessing: dict) -> Callable[[Image.Image], torch.Tensor]:
    """PIL RGB image -> normalized float tensor [3, S, S] following ``preprocessing``."""
    import torch

    mean = torch.tensor(preprocessing["mean"], dtype=torch.float32).view(3, 1, 1)
    std = torch.tensor(preprocessing["std"], dtype=torch.float32).view(3, 1, 1)

    def transform(image: Image.Image) -> torch.Tensor:
        view = network_view(image, preprocessing)
        data = torch.frombuffer(bytearray(view.tobytes()), dtype=torch.uint8)
        x = data.view(view.size[1], view.size[0], 3).permute(2, 0, 1).float().div_(255)
        return (x - mean) / std

    return transform


@dataclass(frozen=True)
class FailedImage:
    image_id: int
    path: str
    reason: str


class ImageFileDataset:
    """(image_id, path) items -> (image_id, tensor | None, reason) after decode + preprocess;
    with ``views=True`` the network view (PIL RGB, the tensor's pixels) instead of the tensor.

    A file that fails to decode yields ``tensor=None`` and the reason instead of raising.
    A map-style dataset (``__len__`` + ``__getitem__``), which is all DataLoader needs.
    """

    def __init__(
        self,
        items: Sequence[tuple[int, str | Path]],
        preprocessing: dict,
        *,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        views: bool = False,
    ) -> None:
        self.items = list(items)
        self.preprocessing = preprocessing
        self.max_pixels = max_pixels
        self.views = views  # the network view (PIL RGB) instead of the normalized tensor
        self._transform = None  # built in the process that decodes (closures do not pickle)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_transform": None}

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int):
        image_id, path = self.items[index]
        try:
            image = load_rgb(path, max_pixels=self.max_pixels)
            if self.views:
                return int(image_id), network_view(image, self.preprocessing), ""
            if self._transform is None:
                self._transform = preprocess_transform(self.preprocessing)
            tensor = self._transform(image)
        except BadImageError as exc:
            return int(image_id), None, str(exc)
        except Exception as exc:  # noqa: BLE001 - any decoder failure is skipped, not fatal
            return int(image_id), None, f"{path}: {type(exc).__name__}: {exc}"
        return int(image_id), tensor, ""


def _collate(samples):
    return samples  # keep failures visible; batching happens in iter_image_batches


# Imported once by the forkserver, so each decode worker forks with them loaded: without it
# every worker of every shard imports torch again (seconds each; 10-12 s on a loaded 2-core
# machine against about 1 s preloaded, for its first batch). Django-free modules only.
DECODE_PRELOAD = ["torch", "numpy", "PIL.Image", "dissect.images", "dissect.engine.batches",
                  "dissect.autolabel"]  # fmt: skip


def decode_loader(dataset, *, batch_size: int, workers: int, pin_memory: bool = False):
    """A DataLoader that decodes ``dataset`` in ``workers`` processes (0: in this one) and hands
    over each batch's samples as a list, failures included (every batch iterator uses it)."""
    import multiprocessing

    import torch

    if workers > 0:
        # Takes effect when the forkserver starts (this process's first decode workers).
        multiprocessing.set_forkserver_preload(DECODE_PRELOAD)
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        num_workers=workers,
        collate_fn=_collate,
        # Forked decode workers deadlock when the parent holds threads (a Celery worker's broker
        # connection, torch's pools); forkserver starts them from a clean process instead.
        multiprocessing_context="forkserver" if workers > 0 else None,
        pin_memory=pin_memory,
        persistent_workers=False,
    )


def iter_image_batches(
    items: Iterable[tuple[int, str | Path]],
    preprocessing: dict,
    *,
    batch_size: int = 64,
    workers: int = 0,
    on_failure: Callable[[FailedImage], None] | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    pin_memory: bool = False,
    views: bool = False,
) -> Iterator[tuple]:
    """Yield ``(image_ids int64 [n], images float32 [n, 3, S, S])`` batches in item order,
    decoding with ``workers`` processes. Files that fail are left out of the batch and reported
    through ``on_failure(FailedImage)``; the run never stops for a bad file. ``views=True``
    yields ``(image ids, network views)`` instead (PIL RGB, ``network_view``: the tensors'
    pixels, what tiles are cut from) and makes no tensor.
    """
    import torch

    dataset = ImageFileDataset(items, preprocessing, max_pixels=max_pixels, views=views)
    paths = {int(i): str(p) for i, p in dataset.items}
    loader = decode_loader(dataset, batch_size=batch_size, workers=workers, pin_memory=pin_memory)
    for samples in loader:
        ids, values = [], []
        for image_id, value, reason in samples:
            if value is None:
                if on_failure is not None:
                    on_failure(FailedImage(image_id, paths.get(image_id, ""), reason))
                continue
            ids.append(image_id)
            values.append(value)
        if ids and views:
            yield ids, values
        elif ids:
            yield torch.tensor(ids, dtype=torch.int64), torch.stack(values)
