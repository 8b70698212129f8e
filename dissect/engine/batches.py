"""Batches for a one-pass dissection: decoded images plus (optionally) their label maps.

Decoding runs in ``torch.utils.data.DataLoader`` worker processes, so it overlaps the forward
pass (the loader prefetches while ``extract_unit_stats`` computes). Images are decoded by
``dissect.images`` (``load_rgb`` + ``preprocess_transform``, the same recipe as
``iter_image_batches``); label maps come from a caller-given, picklable ``load_labels`` (e.g.
reading a Broden PNG and applying ``dissect.autolabel.label_view``), so this module knows
no dataset layout.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
import torch

from dissect.images import DEFAULT_MAX_PIXELS, FailedImage, ImageFileDataset, decode_loader

__all__ = ["LabeledImageDataset", "iter_labeled_batches"]

# load_labels(image_id, path) -> int array [M, H, W] (or [H, W]) at the comparison size, or None;
# or (array | None, note): the note (e.g. "label maps 64x64 resized to 128x128") reaches the
# main process through ``on_label_note`` (worker processes cannot log to the run once).
LabelLoader = Callable[[int, str], "np.ndarray | None | tuple[np.ndarray | None, str]"]


class LabeledImageDataset:
    """(image_id, path) items -> (image_id, tensor | None, reason, label maps | None).

    ``load_labels`` must be picklable (a module-level function or a small class) when workers
    are used. A label loader error drops only the labels (the image still counts for top-K and
    quantiles) and is reported in ``reason`` with the tensor kept."""

    def __init__(
        self,
        items: Sequence[tuple[int, str | Path]],
        preprocessing: dict,
        load_labels: LabelLoader | None,
        *,
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ) -> None:
        self.images = ImageFileDataset(items, preprocessing, max_pixels=max_pixels)
        self.load_labels = load_labels

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int):
        image_id, tensor, reason = self.images[index]
        if tensor is None or self.load_labels is None:
            return image_id, tensor, reason, None
        path = str(self.images.items[index][1])
        try:
            maps = self.load_labels(image_id, path)
        except Exception as exc:  # noqa: BLE001 - a bad label file must not stop the run
            return image_id, tensor, f"{path}: labels: {type(exc).__name__}: {exc}", None
        if isinstance(maps, tuple):
            maps, reason = maps
        if maps is not None:
            maps = np.asarray(maps)
            maps = maps[None] if maps.ndim == 2 else maps
            if maps.dtype not in (np.uint8, np.int16, np.int32, np.int64):
                maps = maps.astype(np.int64)  # e.g. uint16 / uint32: no torch dtype for them
            # Kept in their own (small) dtype: they cross the worker pipe for every image.
            maps = torch.from_numpy(np.ascontiguousarray(maps))
        return image_id, tensor, reason, maps


def _stack_maps(maps: list[torch.Tensor | None]) -> tuple[torch.Tensor | None, torch.Tensor]:
    """Pad label planes to the batch's largest plane count (extra planes are 0 = unlabeled)."""
    present = torch.tensor([m is not None for m in maps], dtype=torch.bool)
    real = [m for m in maps if m is not None]
    if not real:
        return None, present
    depth = max(m.shape[0] for m in real)
    h, w = real[0].shape[1:]
    dtype = real[0].dtype
    for m in real[1:]:
        dtype = torch.promote_types(dtype, m.dtype)
    out = torch.zeros(len(maps), depth, h, w, dtype=dtype)
    for i, m in enumerate(maps):
        if m is not None:
            if tuple(m.shape[1:]) != (h, w):
                raise ValueError(
                    f"label maps of one batch must share their size: {tuple(m.shape[1:])} vs "
                    f"{(h, w)}; have load_labels return maps at the comparison size"
                )
            out[i, : m.shape[0]] = m
    return out, present


def iter_labeled_batches(
    items: Iterable[tuple[int, str | Path]],
    preprocessing: dict,
    load_labels: LabelLoader | None = None,
    *,
    batch_size: int = 64,
    workers: int = 0,
    on_failure: Callable[[FailedImage], None] | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    pin_memory: bool = False,
    on_label_note: Callable[[int, str], None] | None = None,
) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor]]:
    """Yield ``(image_ids int64 [n], images float32 [n, 3, S, S], label_maps integer
    [n, M, H, W] | None, has_labels bool [n])`` in item order, decoding in ``workers`` processes
    (forkserver, as ``iter_image_batches``): the batch form ``extract_unit_stats`` takes with a
    ``LabelSpec``. Images that fail to decode are left out and reported via ``on_failure``;
    images whose labels fail or are None have ``has_labels`` False. ``on_label_note(image_id,
    text)`` hears, in this process, why an image's labels failed or what the loader noted
    (``load_labels`` returning ``(maps, note)``)."""
    items = list(items)
    dataset = LabeledImageDataset(items, preprocessing, load_labels, max_pixels=max_pixels)
    paths = {int(i): str(p) for i, p in items}
    loader = decode_loader(dataset, batch_size=batch_size, workers=workers, pin_memory=pin_memory)
    for samples in loader:
        ids, tensors, maps = [], [], []
        for image_id, tensor, reason, label_maps in samples:
            if tensor is None:
                if on_failure is not None:
                    on_failure(FailedImage(image_id, paths.get(image_id, ""), reason))
                continue
            if reason and on_label_note is not None:
                on_label_note(image_id, reason)
            ids.append(image_id)
            tensors.append(tensor)
            maps.append(label_maps)
        if ids:
            stacked, present = _stack_maps(maps)
            yield torch.tensor(ids, dtype=torch.int64), torch.stack(tensors), stacked, present
