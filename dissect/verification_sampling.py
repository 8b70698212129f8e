"""Images for verifying a unit's label over its whole activation range (issue 16).

The paper's precision looks only at a unit's top images. To judge a label over all the data we
score every image of the run's image set by the unit's spatial max (one forward pass for the
layer, all its units at once), then draw a **stratified sample by activation rank**: strata are
rank bands from the top (``STRATA_EDGES``: the top 0.5 % where the unit fires, then 0.5-2 %,
2-10 %, 10-30 %, 30-100 % down to zero activation), each stratum gets an equal share of the
sample and is drawn without replacement, so every sampled image has a KNOWN inclusion
probability ``n_b / N_b`` (its Horvitz-Thompson weight is the inverse). High activations are
over-sampled (cheap to verify what matters), the rest is still covered.

Each sampled image carries the unit's highlighted region as a tile: the activation map upsampled
to the network's view and kept above the unit's threshold (NetDissect's quantile mask), or the
whole image when the unit is silent there. Where the image set has label maps (Broden layout) and
the label names one of its labels, every image also gets the concept's coverage of that region,
and a few **planted checks** are drawn outside the sample: images the label certainly fits
(the concept covers at least ``CHECK_FITS_COVERAGE`` of the region) or certainly does not (the
concept is nowhere in the image's label maps).

``stratified_sample`` and ``score_layer`` / ``sample_unit`` are plain torch/numpy;
``sample_run_units`` reads and writes Django rows and media (tiles, a JSON record of the sample).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

__all__ = [
    "CHECK_FITS_COVERAGE",
    "PRESENT_COVERAGE",
    "STRATA_EDGES",
    "SampledImage",
    "UnitSample",
    "VerificationSampleError",
    "concept_label_numbers",
    "sample_run_units",
    "score_layer",
    "stratified_sample",
]

# Rank fractions from the top that bound the strata (first band: NetDissect's top 0.5 %).
STRATA_EDGES: tuple[float, ...] = (0.0, 0.005, 0.02, 0.1, 0.3, 1.0)
# Label-map truth: the concept "is in the region" when it covers at least this share of it.
PRESENT_COVERAGE = 0.05
# A planted "fits" check: the concept covers at least this share of the highlighted region.
CHECK_FITS_COVERAGE = 0.5
# Units whose sampled images share one forward pass (their views and maps stay in memory).
UNITS_PER_PASS = 16
# Candidates looked at per planted check (each needs its map and label maps read).
_CANDIDATES_PER_CHECK = 6

Progress = Callable[[int, int], None]


class VerificationSampleError(ValueError):
    """The sample cannot be drawn; the message says what to do."""


@dataclass
class SampledImage:
    """One image shown for verification. ``inclusion_probability`` is the chance this image was
    drawn (0 for planted checks, which measures never count); ``stratum`` its rank band;
    ``check`` is '' or 'fits' / 'not' (planted); ``coverage`` the concept's share of the region
    from label maps (None without maps); ``silent``: the unit is below its threshold here, so the
    tile is the whole image."""

    image_id: int
    activation: float
    inclusion_probability: float
    stratum: int
    silent: bool
    tile_path: str = ""
    check: str = ""
    coverage: float | None = None

    @property
    def concept_present(self) -> bool | None:
        """The label maps' answer to "does the region show the concept?" (None: no maps)."""
        return None if self.coverage is None else self.coverage >= PRESENT_COVERAGE


@dataclass
class UnitSample:
    """A unit's verification sample: the drawn images, planted checks, the population size,
    the threshold the masks used and the strata (rank band edges, sizes, draws)."""

    unit_index: int
    concept: str
    population: int
    threshold: float
    items: list[SampledImage] = field(default_factory=list)
    checks: list[SampledImage] = field(default_factory=list)
    strata: list[dict] = field(default_factory=list)
    label_maps: bool = False

    def as_dict(self) -> dict:
        return asdict(self)


def stratified_sample(
    scores: Sequence[float],
    ids: Sequence[int],
    *,
    n: int,
    seed: int,
    edges: Sequence[float] = STRATA_EDGES,
) -> tuple[list[tuple[int, float, int]], list[dict]]:
    """Draw ``n`` of the population (``scores`` with their image ``ids``) stratified by rank.

    Ranks: score descending, ties by image id. Stratum b holds ranks [ceil(e_b N), ceil(e_{b+1} N))
    (so the top band is never empty), empty strata are dropped, each stratum gets an equal share
    (what a small stratum cannot take goes to the others, top first) and is drawn without
    replacement. Returns ([(population index, inclusion probability, stratum)], strata) where
    strata are {"stratum", "from_rank", "to_rank", "size", "drawn"}; deterministic in ``seed``."""
    scores = np.asarray(scores, dtype=np.float64)
    ids = np.asarray(ids, dtype=np.int64)
    total = len(scores)
    if total == 0 or n <= 0:
        return [], []
    order = np.lexsort((ids, -scores))  # score descending, then image id
    bounds = sorted({min(total, int(np.ceil(e * total))) for e in edges} | {0, total})
    strata = [(lo, hi) for lo, hi in zip(bounds, bounds[1:], strict=False) if hi > lo]
    want = _allocate(min(n, total), [hi - lo for lo, hi in strata])
    rng = random.Random(f"verification:{seed}")
    chosen, described = [], []
    for b, ((lo, hi), k) in enumerate(zip(strata, want, strict=True)):
        picks = sorted(rng.sample(range(lo, hi), k))
        probability = k / (hi - lo)
        chosen += [(int(order[r]), probability, b) for r in picks]
        described.append(
            {"stratum": b, "from_rank": lo, "to_rank": hi, "size": hi - lo, "drawn": k}
        )
    return chosen, described


def _allocate(n: int, sizes: list[int]) -> list[int]:
    """Equal shares of ``n`` over strata of ``sizes``, capped by each size; leftovers go to the
    strata with room, top first (sum = min(n, sum(sizes)))."""
    want = [0] * len(sizes)
    left = n
    while left > 0:
        room = [i for i, size in enumerate(sizes) if want[i] < size]
        if not room:
            break
        share = max(1, left // len(room))
        for i in room:
            take = min(share, sizes[i] - want[i], left)
            want[i] += take
            left -= take
            if left == 0:
                break
    return want


# -- forward passes ---------------------------------------------------------------------------


def _forward_layer(net, layer: str, batches, dev, on_batch) -> None:
    """Feed ``batches`` of (ids, x) through ``net`` up to ``layer`` (stops there) and call
    ``on_batch(ids, output)`` with the layer's output on ``dev`` ([N, U, H, W] or [N, U])."""
    import torch

    from dissect.networks import capture_outputs, resolve_layers, run_until_captured

    (resolved,) = resolve_layers(net, [layer])
    with torch.inference_mode(), capture_outputs([resolved], stop_early=True) as captured:
        for ids, x in batches:
            run_until_captured(net.model, x.to(dev), captured)
            on_batch(ids, captured[resolved.alias].float())


def score_layer(
    net,
    layer: str,
    items: Sequence[tuple[int, str]],
    *,
    device: str = "auto",
    batch_size: int = 32,
    workers: int = 0,
    on_failure=None,
    progress: Progress | None = None,
):
    """Every image's spatial max for every unit of ``layer``: (image ids int64 [N], scores
    float32 [N, U]) as numpy, in one pass on the model's device (``place_model``; only the
    [B, U] maxima leave the device)."""
    from dissect.engine import place_model, spatial_max
    from dissect.images import iter_image_batches

    dev = place_model(net, device)
    ids_out, scores_out, done = [], [], 0

    def keep(ids, output) -> None:
        nonlocal done
        scores, _ = spatial_max(output)
        ids_out.append(ids.numpy())
        scores_out.append(scores.cpu().numpy())
        done += len(ids)
        if progress is not None:
            progress(done, len(items))

    batches = iter_image_batches(
        items, net.preprocessing, batch_size=batch_size, workers=workers, on_failure=on_failure
    )
    _forward_layer(net, layer, batches, dev, keep)
    if not ids_out:
        return np.zeros(0, np.int64), np.zeros((0, 0), np.float32)
    return np.concatenate(ids_out), np.concatenate(scores_out)


def _views_and_maps(net, layer: str, paths: Mapping[int, str], units: Sequence[int], dev):
    """{image id: (network view PIL, {unit: activation map [h, w] float32 cpu})} of the images
    ``paths`` names (samples and check candidates of a few units: one pass, decoded a batch at a
    time so only the views and the wanted maps stay in memory)."""
    import torch

    from dissect.images import load_rgb, network_view, preprocess_transform

    transform = preprocess_transform(net.preprocessing)
    ids = sorted(paths)
    views: dict[int, object] = {}
    out: dict[int, tuple] = {}

    def keep(batch_ids, output) -> None:
        if output.dim() == 2:
            output = output[:, :, None, None]
        index = torch.as_tensor(list(units), dtype=torch.int64, device=output.device)
        maps = output.index_select(1, index).cpu()
        for row, image_id in enumerate(batch_ids.tolist()):
            out[image_id] = (views.pop(image_id), {u: maps[row, k] for k, u in enumerate(units)})

    def batches():
        for start in range(0, len(ids), 32):
            chunk, tensors = ids[start : start + 32], []
            for image_id in chunk:
                image = load_rgb(paths[image_id])
                views[image_id] = network_view(image, net.preprocessing)
                tensors.append(transform(image))
            yield torch.tensor(chunk), torch.stack(tensors)

    _forward_layer(net, layer, batches(), dev, keep)
    return out


def region_mask(activation_map, view_size: tuple[int, int], threshold: float):
    """The unit's highlighted region on the network view: the upsampled map above the unit's
    threshold (``mask_quantile``); (mask, silent) with the whole image when nothing passes."""
    from dissect.engine import mask_quantile

    mask = mask_quantile(activation_map, view_size, level=threshold)
    if not mask.any():
        return np.ones((view_size[1], view_size[0]), dtype=bool), True
    return mask, False


# -- label maps -------------------------------------------------------------------------------


def concept_label_numbers(dataset, concept: str) -> set[int]:
    """Label numbers of a Broden dataset whose name is ``concept`` (case and spacing ignored;
    Broden's '-s' suffixes like 'car-s' count as the name)."""

    def key(text: str) -> str:
        text = " ".join(str(text).lower().replace("_", " ").split())
        return text[:-2] if text.endswith("-s") else text

    wanted = key(concept)
    return {
        number for number, label in dataset.labels.items() if number and key(label.name) == wanted
    }


class _ConceptMaps:
    """Per image, the concept's pixels in the network's view (or None: no label row)."""

    def __init__(self, dataset, numbers: set[int], preprocessing: dict) -> None:
        self.dataset = dataset
        self.numbers = numbers
        self.preprocessing = preprocessing
        self.rows = dataset.row_by_image()
        self.images_dir = dataset.images_dir.resolve()

    def concept_pixels(self, path: str, size: int):
        from PIL import Image as PILImage

        from dissect.autolabel import label_view

        try:
            key = Path(path).resolve().relative_to(self.images_dir).as_posix()
        except ValueError:
            return None
        row = self.rows.get(key)
        if row is None:
            return None
        if self.numbers & set(row.image_labels):
            return np.ones((size, size), dtype=bool)  # a whole-image label (scene, texture)
        with PILImage.open(path) as im:
            image_size = im.size
        pixels = np.zeros((size, size), dtype=bool)
        for label_map in self.dataset.read_label_maps(row):
            view = label_view(label_map, image_size, self.preprocessing, size)
            pixels |= np.isin(view, list(self.numbers))
        return pixels


def _coverage(mask: np.ndarray, pixels: np.ndarray | None) -> float | None:
    if pixels is None:
        return None
    return float((mask & pixels).sum() / max(1, mask.sum()))


# -- one unit ---------------------------------------------------------------------------------


def _draw(unit_scores, ids, *, n: int, seed: int, unit: int, checks: int):
    """(drawn, strata, check candidates) of one unit: the stratified sample and, for planted
    checks, the best-scoring and some lower-half images outside it (deterministic in seed)."""
    drawn, strata = stratified_sample(unit_scores, ids, n=n, seed=seed)
    candidates: list[int] = []
    if checks > 0:
        in_sample = {int(ids[i]) for i, _, _ in drawn}
        rest = [i for i in np.lexsort((ids, -unit_scores)) if int(ids[i]) not in in_sample]
        wanted = checks * _CANDIDATES_PER_CHECK
        rng = random.Random(f"verification-checks:{seed}:{unit}")
        lows = rest[len(rest) // 2 :]
        picked = rest[:wanted] + rng.sample(lows, min(wanted, len(lows)))
        candidates = list(dict.fromkeys(picked))  # a small set's bands overlap
    return drawn, strata, candidates


def sample_unit(
    *,
    net,
    layer: str,
    unit: int,
    concept: str,
    ids: np.ndarray,
    scores: np.ndarray,
    paths: Mapping[int, str],
    threshold: float,
    n: int,
    seed: int,
    checks: int = 0,
    concept_maps: _ConceptMaps | None = None,
    device: str = "auto",
    write_tile: Callable | None = None,
    seen: Mapping | None = None,
) -> UnitSample:
    """The verification sample of ``unit`` from the layer's scores (``score_layer``): ``n``
    images stratified by rank (``stratified_sample``), each with its region tile written by
    ``write_tile(view, mask) -> name`` (skipped when None), its label-map coverage, and up to
    ``checks`` planted checks of each kind when ``concept_maps`` is given. ``seen``: the views
    and maps of its images from a pass shared with other units (``_views_and_maps``)."""
    from dissect.engine import place_model

    dev = place_model(net, device)
    unit_scores = scores[:, unit]
    drawn, strata, candidates = _draw(
        unit_scores, ids, n=n, seed=seed, unit=unit, checks=checks if concept_maps else 0
    )
    sample = UnitSample(
        unit_index=unit,
        concept=concept,
        population=len(ids),
        threshold=float(threshold),
        strata=strata,
        label_maps=concept_maps is not None,
    )
    if seen is None:
        wanted_ids = {int(ids[i]) for i, _, _ in drawn} | {int(ids[i]) for i in candidates}
        seen = _views_and_maps(net, layer, {i: paths[i] for i in wanted_ids}, [unit], dev)

    def describe(index: int, probability: float, stratum: int, check: str = ""):
        image_id = int(ids[index])
        view, maps = seen[image_id]
        mask, silent = region_mask(maps[unit], view.size, threshold)
        pixels = None
        if concept_maps is not None:
            pixels = concept_maps.concept_pixels(paths[image_id], view.size[0])
        item = SampledImage(
            image_id=image_id,
            activation=float(unit_scores[index]),
            inclusion_probability=probability,
            stratum=stratum,
            silent=silent,
            check=check,
            coverage=_coverage(mask, pixels),
        )
        return item, view, mask, pixels

    pending = []
    for index, probability, stratum in drawn:
        pending.append(describe(index, probability, stratum)[:3])
    fits, nots = [], []
    for index in candidates:
        item, view, mask, pixels = describe(index, 0.0, -1)
        if item.coverage is None:
            continue
        if item.coverage >= CHECK_FITS_COVERAGE and not item.silent and len(fits) < checks:
            item.check = "fits"
            fits.append((item, view, mask))
        elif not pixels.any() and len(nots) < checks:
            item.check = "not"
            nots.append((item, view, mask))
    for item, view, mask in pending + fits + nots:
        if write_tile is not None:
            item.tile_path = write_tile(view, mask)
    sample.items = [p[0] for p in pending]
    sample.checks = [p[0] for p in fits + nots]
    return sample


# -- a run's units (Django) -------------------------------------------------------------------


def _tile_writer(tile_px: int):
    from dissect.engine import make_tile
    from dissect.services.common import jpeg_bytes
    from dissect.storage import save_content_addressed

    def write(view, mask) -> str:
        # The whole image when silent: an all-true mask dims nothing.
        tile = make_tile(view, mask, tile_px=tile_px)
        return save_content_addressed(jpeg_bytes(tile), kind="tiles", ext="jpg")

    return write


def sample_run_units(
    *,
    run_id: int,
    unit_concepts: Mapping[int, str],
    n: int,
    seed: int,
    checks: int = 2,
    net=None,
    progress: Progress | None = None,
) -> dict[int, UnitSample]:
    """Verification samples of the run's units ``unit_concepts`` {Unit id: concept}: one scoring
    pass per layer over every usable image of the run's image set, then per unit the stratified
    sample, its tiles (media storage, content-addressed) and, when the image set has label maps
    naming the concept, coverage and planted checks. ``net`` overrides the run's network (tests).
    Returns {Unit id: UnitSample}; raises VerificationSampleError naming what to fix."""
    from dissect.engine import place_model
    from dissect.models import DissectionRun, Unit
    from dissect.selectors import run_ordered_images
    from dissect.services.common import DEFAULTS
    from dissect.services.image_sets import image_mark_bad
    from dissect.services.networks import network_load

    run = DissectionRun.objects.select_related("network", "image_set").get(pk=run_id)
    if run.status != DissectionRun.Status.DONE or run.image_set is None:
        raise VerificationSampleError(
            f"run {run_id} is {run.status}: verification samples come from a finished (done) run "
            "with an image set"
        )
    units = list(
        Unit.objects.filter(pk__in=list(unit_concepts), layer__run=run).select_related("layer")
    )
    missing = sorted(set(unit_concepts) - {u.pk for u in units})
    if missing:
        raise VerificationSampleError(f"units {missing} are not units of run {run_id}")
    net = net if net is not None else network_load(network=run.network)
    root = Path(run.image_set.root)
    items = [
        (pk, str(root / path)) for pk, path in run_ordered_images(run=run).values_list("id", "path")
    ]
    if not items:
        raise VerificationSampleError(f"run {run_id}: its image set has no usable images")
    paths = dict(items)
    params = run.parameters or {}
    device = params.get("device", "auto")
    write_tile = _tile_writer(int(params.get("tile_px", DEFAULTS["tile_px"])))
    dataset = _label_dataset(run)
    by_layer: dict[str, list] = {}
    for unit in units:
        by_layer.setdefault(unit.layer.name, []).append(unit)
    out: dict[int, UnitSample] = {}
    done, total = 0, len(items) * len(by_layer) + len(units)
    for layer, layer_units in by_layer.items():
        base = done

        def scored(k: int, _m: int, base=base) -> None:
            if progress is not None:
                progress(base + k, total)

        ids, scores = score_layer(
            net, layer, items, device=device,
            on_failure=lambda f: image_mark_bad(image_id=f.image_id, reason=f.reason),
            progress=scored,
        )  # fmt: skip
        done = base + len(items)
        if len(ids) == 0:
            raise VerificationSampleError(f"run {run_id}: no image of its set could be read")
        maps_of = {}
        for unit in layer_units:
            maps_of[unit.pk] = None
            if dataset is not None:
                numbers = concept_label_numbers(dataset, unit_concepts[unit.pk])
                if numbers:
                    maps_of[unit.pk] = _ConceptMaps(dataset, numbers, net.preprocessing)
        # One pass per group of units over the union of their images (not one per unit).
        for start in range(0, len(layer_units), UNITS_PER_PASS):
            group = layer_units[start : start + UNITS_PER_PASS]
            wanted: set[int] = set()
            for unit in group:
                drawn, _, candidates = _draw(
                    scores[:, unit.index], ids, n=n, seed=seed + unit.pk, unit=unit.index,
                    checks=checks if maps_of[unit.pk] else 0,
                )  # fmt: skip
                wanted |= {int(ids[i]) for i, _, _ in drawn} | {int(ids[i]) for i in candidates}
            seen = _views_and_maps(
                net, layer, {i: paths[i] for i in wanted}, [u.index for u in group],
                place_model(net, device),
            )  # fmt: skip
            for unit in group:
                threshold = unit.threshold if unit.threshold is not None else float("inf")
                out[unit.pk] = sample_unit(
                    net=net, layer=layer, unit=unit.index, concept=unit_concepts[unit.pk],
                    ids=ids, scores=scores, paths=paths, threshold=threshold, n=n,
                    seed=seed + unit.pk, checks=checks, concept_maps=maps_of[unit.pk],
                    device=device, write_tile=write_tile, seen=seen,
                )  # fmt: skip
                done += 1
                if progress is not None:
                    progress(done, total)
    return out


def _label_dataset(run):
    """The image set's Broden labels, or None when it has none (or they cannot be read)."""
    from dissect.autolabel import AutoLabelError, run_label_dataset

    if not run.image_set.labels_dir:
        return None
    try:
        return run_label_dataset(run)
    except AutoLabelError:
        return None


def samples_to_json(samples: Mapping[int, UnitSample]) -> bytes:
    """{Unit id: sample} as JSON bytes (what the Celery task stores)."""
    return json.dumps({str(k): v.as_dict() for k, v in samples.items()}, sort_keys=True).encode()


def samples_from_json(data: bytes) -> dict[int, UnitSample]:
    """The inverse of ``samples_to_json``."""
    raw = json.loads(data)
    out = {}
    for key, value in raw.items():
        items = [SampledImage(**i) for i in value.pop("items")]
        checks = [SampledImage(**i) for i in value.pop("checks")]
        out[int(key)] = UnitSample(**value, items=items, checks=checks)
    return out
