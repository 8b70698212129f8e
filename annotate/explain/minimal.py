"""Minimal images (Zhou et al., ICLR 2015, §3.1): remove image segments one at a time, each time
the one whose removal lowers the correct class's score least, until the image is misclassified.
What is left before that last removal is the *minimal image*.

- ``greedy_minimal(score_fn, n_segments, target)``: the greedy rule on any scorer of kept-segment
  sets (tested against brute force);
- ``fill_removed(image, removed)``: removed pixels are filled smoothly from the kept ones (a
  normalized Gaussian blur of the kept pixels, the image's grey where nothing is kept nearby), or
  with flat grey; kept pixels are never changed;
- method 1: ``slic_segments(image)`` (scikit-image SLIC) then ``minimal_image(net, image)``;
- method 2 (ground truth): ``ground_truth_segments(object_map)`` (one segment per object or region
  class in the demo world's object map) and ``demo_world_minimal(...)``, which counts per scene
  class how often each object or region survives in the minimal images.

Plain torch/numpy (+ scipy, scikit-image): no Django.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

__all__ = [
    "FILL_MODES",
    "RemovalStep",
    "MinimalResult",
    "greedy_minimal",
    "fill_removed",
    "segments_scorer",
    "slic_segments",
    "ground_truth_segments",
    "minimal_image",
    "demo_world_minimal",
    "SceneSurvival",
]

FILL_MODES = ("smooth", "grey")
ScoreFn = Callable[[np.ndarray], np.ndarray]  # kept (B, n) bool -> class scores (B, C)


@dataclass
class RemovalStep:
    """One greedy step: ``segment`` removed, the target class's ``score`` after it, the class
    then ``predicted`` and whether it is still ``correct``. The last step of a result that
    stopped at misclassification is the removal that broke it (not applied to the minimal image)."""

    segment: int
    score: float
    predicted: int
    correct: bool


@dataclass
class MinimalResult:
    target: int
    initial_score: float
    initial_predicted: int
    steps: list[RemovalStep] = field(default_factory=list)
    kept: list[int] = field(default_factory=list)  # segments of the minimal image
    removed: list[int] = field(default_factory=list)  # segments removed, in order

    @property
    def correct_at_start(self) -> bool:
        return self.initial_predicted == self.target

    def as_dict(self) -> dict:
        out = asdict(self)
        out["correct_at_start"] = self.correct_at_start
        return out


def greedy_minimal(score_fn: ScoreFn, n_segments: int, target: int) -> MinimalResult:
    """The paper's greedy removal. ``score_fn(kept)`` gets a (B, n_segments) bool array (True =
    segment still there) and returns (B, C) class scores (probabilities or logits).

    Each step scores every single removal from the current image in one batch, applies the one
    with the highest target score (the lowest index on ties) if the image is still classified as
    ``target`` after it, and stops otherwise (that step is recorded, not applied). An image that
    is misclassified to begin with gets no steps and keeps every segment."""
    kept = np.ones(n_segments, dtype=bool)
    first = np.asarray(score_fn(kept[None]))[0]
    result = MinimalResult(target, float(first[target]), int(np.argmax(first)))
    if not result.correct_at_start:
        result.kept = list(range(n_segments))
        return result
    while kept.any():
        candidates = np.flatnonzero(kept)
        trials = np.repeat(kept[None], len(candidates), axis=0)
        trials[np.arange(len(candidates)), candidates] = False
        scores = np.asarray(score_fn(trials))
        best = int(np.argmax(scores[:, target]))
        predicted = int(np.argmax(scores[best]))
        step = RemovalStep(
            int(candidates[best]), float(scores[best, target]), predicted, predicted == target
        )
        result.steps.append(step)
        if not step.correct:
            break
        kept[step.segment] = False
        result.removed.append(step.segment)
    result.kept = np.flatnonzero(kept).tolist()
    return result


def fill_removed(
    image: np.ndarray, removed: np.ndarray, *, mode: str = "smooth", sigma: float | None = None
) -> np.ndarray:
    """``image`` (H, W, 3) uint8 with the pixels where ``removed`` (H, W) is True filled; every
    other pixel is returned unchanged. ``smooth``: a Gaussian blur of the kept pixels only
    (normalized convolution, sigma = 1/8 of the image side), blended into the kept pixels' mean
    grey where few kept pixels are near, so nothing of the removed content leaks in; ``grey``: the
    kept pixels' mean grey level, flat."""
    from scipy.ndimage import gaussian_filter

    if mode not in FILL_MODES:
        raise ValueError(f"fill mode {mode!r}: use one of {', '.join(FILL_MODES)}")
    removed = np.asarray(removed, dtype=bool)
    out = image.copy()
    if not removed.any():
        return out
    keep = ~removed
    pixels = image.astype(np.float32)
    grey = float(pixels[keep].mean()) if keep.any() else 128.0
    if mode == "grey":
        out[removed] = np.uint8(round(grey))
        return out
    sigma = sigma if sigma is not None else max(image.shape[:2]) / 8
    weight = gaussian_filter(keep.astype(np.float32), sigma, mode="constant")
    filled = np.empty_like(pixels)
    for c in range(3):
        filled[..., c] = gaussian_filter(pixels[..., c] * keep, sigma, mode="constant")
    # weight ~ share of kept pixels nearby: far from any kept pixel the fill fades to grey
    alpha = np.clip(weight / 0.25, 0.0, 1.0)[..., None]
    smooth = filled / np.maximum(weight, 1e-6)[..., None]
    filled = alpha * smooth + (1 - alpha) * grey
    out[removed] = np.clip(np.rint(filled[removed]), 0, 255).astype(np.uint8)
    return out


def _to_input(images: np.ndarray, preprocessing: dict) -> torch.Tensor:
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div_(255.0)
    mean = torch.tensor(preprocessing["mean"], dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(preprocessing["std"], dtype=torch.float32).view(1, 3, 1, 1)
    return (x - mean) / std


def segments_scorer(
    model: torch.nn.Module,
    preprocessing: dict,
    image: np.ndarray,
    segments: np.ndarray,
    *,
    fill: str = "smooth",
    batch_size: int = 32,
) -> ScoreFn:
    """A ``score_fn`` for ``greedy_minimal``: ``image`` (S, S, 3) uint8 in the network's view,
    ``segments`` (S, S) int (segment index per pixel; -1 = never removed); returns softmax
    probabilities of the images with the removed segments filled."""

    def score(kept: np.ndarray) -> np.ndarray:
        images = np.empty((len(kept), *image.shape), np.uint8)
        for i, row in enumerate(kept):
            gone = np.flatnonzero(~row)
            images[i] = fill_removed(image, np.isin(segments, gone), mode=fill)
        probs = []
        with torch.inference_mode():
            for start in range(0, len(images), batch_size):
                logits = model(_to_input(images[start : start + batch_size], preprocessing))
                probs.append(torch.softmax(logits.float(), dim=1).numpy())
        return np.concatenate(probs)

    return score


def slic_segments(
    image: np.ndarray, *, n_segments: int = 24, compactness: float = 10.0
) -> np.ndarray:
    """Method 1's segments: scikit-image SLIC superpixels, numbered 0..n-1 (H, W) int."""
    from skimage.segmentation import slic

    labels = slic(image, n_segments=n_segments, compactness=compactness, start_label=0)
    _, dense = np.unique(labels, return_inverse=True)
    return dense.reshape(labels.shape).astype(np.int64)


def ground_truth_segments(object_map: np.ndarray) -> tuple[np.ndarray, list[int]]:
    """Method 2's segments: one per object or region label present in ``object_map`` (all
    instances of a class together, as the paper counts classes). Returns (segments (H, W) int,
    -1 where the map is 0; the label number of each segment)."""
    labels = [int(v) for v in np.unique(object_map) if v != 0]
    segments = np.full(object_map.shape, -1, dtype=np.int64)
    for i, lab in enumerate(labels):
        segments[object_map == lab] = i
    return segments, labels


def minimal_image(
    model: torch.nn.Module,
    preprocessing: dict,
    image: np.ndarray,
    segments: np.ndarray,
    *,
    target: int | None = None,
    fill: str = "smooth",
) -> tuple[MinimalResult, np.ndarray]:
    """Greedy minimal image of ``image`` (network view, uint8) over ``segments``; ``target``
    defaults to the network's own prediction (method 1 on an unlabeled image). Returns the
    result and the minimal image's pixels."""
    n = int(segments.max()) + 1 if segments.size else 0
    score = segments_scorer(model, preprocessing, image, segments, fill=fill)
    if target is None:
        target = int(np.argmax(score(np.ones((1, n), dtype=bool))[0]))
    result = greedy_minimal(score, n, target)
    removed = np.isin(segments, result.removed)
    return result, fill_removed(image, removed, mode=fill)


@dataclass
class SceneSurvival:
    """Per scene class: images, those correctly classified (which have a minimal image), and per
    object/region label how many of those held it and how many minimal images kept it."""

    scene: str
    images: int = 0
    correct: int = 0
    present: dict[str, int] = field(default_factory=dict)
    kept: dict[str, int] = field(default_factory=dict)
    segments_before: int = 0  # summed over correct images
    segments_kept: int = 0
    kept_objects: int = 0  # kept segments that are objects (vs regions)
    pixels_kept: float = 0.0  # summed share of pixels kept
    empty: int = 0  # minimal images with no segment left (the fill alone names the scene)

    def share(self, name: str) -> float:
        return self.kept.get(name, 0) / self.present[name] if self.present.get(name) else 0.0

    def as_dict(self) -> dict:
        rows = sorted(self.present, key=lambda n: (-self.share(n), n))
        return {
            "scene": self.scene,
            "images": self.images,
            "correct": self.correct,
            "mean_segments": self.segments_before / self.correct if self.correct else None,
            "mean_segments_kept": self.segments_kept / self.correct if self.correct else None,
            "kept_object_share": self.kept_objects / self.segments_kept
            if self.segments_kept
            else None,
            "mean_pixels_kept": self.pixels_kept / self.correct if self.correct else None,
            "empty": self.empty,
            "labels": [
                {
                    "name": n,
                    "present": self.present[n],
                    "kept": self.kept.get(n, 0),
                    "share": round(self.share(n), 4),
                }
                for n in rows
            ],
        }


def demo_world_minimal(
    *,
    model: torch.nn.Module,
    preprocessing: dict,
    n_images: int,
    seed: int,
    fill: str = "smooth",
    keep_examples: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Method 2 on ``n_images`` fresh demo scenes of world ``seed``: remove ground-truth object
    and region segments greedily, and count per scene class which survive. Returns the JSON
    report (``scenes``: ``SceneSurvival.as_dict()`` rows; ``overall``; ``examples``: the first
    ``keep_examples`` images' steps with the names of their segments)."""
    from dissect.demo.world import LABELS, SCENES, render

    model.eval()
    per_scene = {s: SceneSurvival(s) for s in SCENES}
    examples = []
    for i in range(n_images):
        sample = render(seed, i, size=int(preprocessing["input_size"]), variant="scenes")
        row = per_scene[sample.scene]
        row.images += 1
        segments, labels = ground_truth_segments(sample.object)
        names = [LABELS[lab].name for lab in labels]
        categories = [LABELS[lab].category for lab in labels]
        score = segments_scorer(model, preprocessing, sample.image, segments, fill=fill)
        result = greedy_minimal(score, len(labels), sample.class_index)
        if result.correct_at_start:
            row.correct += 1
            row.segments_before += len(labels)
            row.segments_kept += len(result.kept)
            kept_names = {names[k] for k in result.kept}
            row.kept_objects += sum(1 for k in result.kept if categories[k] == "object")
            row.pixels_kept += float(np.isin(segments, result.kept).mean())
            row.empty += not result.kept
            for name in names:
                row.present[name] = row.present.get(name, 0) + 1
                if name in kept_names:
                    row.kept[name] = row.kept.get(name, 0) + 1
        if len(examples) < keep_examples:
            examples.append(
                {
                    "index": i,
                    "scene": sample.scene,
                    "segments": names,
                    "categories": categories,
                    **result.as_dict(),
                }
            )
        if progress:
            progress(i + 1, n_images)
    correct = sum(r.correct for r in per_scene.values())
    kept = sum(r.segments_kept for r in per_scene.values())
    return {
        "method": "ground-truth segments (one per object or region class), greedy removal",
        "seed": seed,
        "n_images": n_images,
        "fill": fill,
        "overall": {
            "correct": correct,
            "empty": sum(r.empty for r in per_scene.values()),
            "mean_segments": sum(r.segments_before for r in per_scene.values()) / correct
            if correct
            else None,
            "mean_segments_kept": kept / correct if correct else None,
            "kept_object_share": sum(r.kept_objects for r in per_scene.values()) / kept
            if kept
            else None,
            "mean_pixels_kept": sum(r.pixels_kept for r in per_scene.values()) / correct
            if correct
            else None,
        },
        "scenes": [per_scene[s].as_dict() for s in SCENES],
        "examples": examples,
    }


def survival_table(report: dict, top: int = 3) -> str:
    """Markdown: per scene class, the labels its minimal images keep most often."""
    lines = [
        "| scene | images | correct | segments | kept | empty | objects among kept | pixels kept "
        "| key object kept | most kept (share of minimal images that keep it) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    from dissect.demo.world.vocabulary import SCENE_SPECS

    for row in report["scenes"]:
        best = ", ".join(
            f"{lab['name']} {lab['share']:.0%} ({lab['kept']}/{lab['present']})"
            for lab in row["labels"][:top]
        )
        key = SCENE_SPECS[row["scene"]].objects[0][0] if row["scene"] in SCENE_SPECS else ""
        k = next((lab for lab in row["labels"] if lab["name"] == key), None)
        key_text = f"{key} {k['share']:.0%} ({k['kept']}/{k['present']})" if k else "–"
        fmt = lambda v, f: format(v, f) if v is not None else "–"  # noqa: E731
        lines.append(
            f"| {row['scene']} | {row['images']} | {row['correct']} | "
            f"{fmt(row['mean_segments'], '.1f')} | {fmt(row['mean_segments_kept'], '.1f')} | "
            f"{row.get('empty', '–')} | {fmt(row['kept_object_share'], '.0%')} | "
            f"{fmt(row['mean_pixels_kept'], '.0%')} | {key_text} | {best} |"
        )
    return "\n".join(lines) + "\n"


def method1_report(
    *,
    model: torch.nn.Module,
    preprocessing: dict,
    class_names: Sequence[str],
    image: np.ndarray,
    n_segments: int = 24,
    fill: str = "smooth",
) -> tuple[dict, np.ndarray, np.ndarray]:
    """Method 1 on one image (network view): SLIC segments, greedy removal from the network's own
    prediction. Returns (JSON report, minimal image, segments)."""
    segments = slic_segments(image, n_segments=n_segments)
    result, minimal = minimal_image(model, preprocessing, image, segments, fill=fill)
    report = result.as_dict()
    report["class"] = class_names[result.target]
    report["segments"] = int(segments.max()) + 1
    report["pixels_kept"] = float(np.isin(segments, result.kept).mean())
    for step in report["steps"]:
        step["predicted_class"] = class_names[step["predicted"]]
    return report, minimal, segments


def demo_world_method1(
    *,
    model: torch.nn.Module,
    preprocessing: dict,
    n_images: int,
    seed: int,
    n_segments: int = 24,
    fill: str = "smooth",
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Method 1 (SLIC segments, no labels used) on fresh demo scenes, scored afterwards against the
    ground truth: the share of the minimal images' pixels that lie on objects (vs regions), next
    to that share in the whole images, and per scene how much of its key object's area is kept."""
    from dissect.demo.world import LABELS, SCENES, render
    from dissect.demo.world.vocabulary import SCENE_SPECS, label_number

    is_object = np.zeros(len(LABELS), dtype=bool)
    is_object[[lab.number for lab in LABELS if lab.category == "object"]] = True
    rows = {
        s: {
            "scene": s,
            "images": 0,
            "correct": 0,
            "segments_kept": 0,
            "pixels_kept": 0.0,
            "object_pixels_kept": 0.0,
            "object_pixels": 0.0,
            "key_kept": 0.0,
        }
        for s in SCENES
    }
    for i in range(n_images):
        sample = render(seed, i, size=int(preprocessing["input_size"]), variant="scenes")
        row = rows[sample.scene]
        row["images"] += 1
        segments = slic_segments(sample.image, n_segments=n_segments)
        result, _ = minimal_image(
            model, preprocessing, sample.image, segments, target=sample.class_index, fill=fill
        )
        if result.correct_at_start:
            kept = np.isin(segments, result.kept)
            objects = is_object[sample.object]
            key = sample.object == label_number("object", SCENE_SPECS[sample.scene].objects[0][0])
            row["correct"] += 1
            row["segments_kept"] += len(result.kept)
            row["pixels_kept"] += float(kept.mean())
            row["object_pixels_kept"] += float((kept & objects).sum() / max(kept.sum(), 1))
            row["object_pixels"] += float(objects.mean())
            row["key_kept"] += float((kept & key).sum() / max(key.sum(), 1))
        if progress:
            progress(i + 1, n_images)
    out = []
    for row in rows.values():
        n = row["correct"]
        out.append(
            {
                "scene": row["scene"],
                "images": row["images"],
                "correct": n,
                "mean_segments_kept": row["segments_kept"] / n if n else None,
                "mean_pixels_kept": row["pixels_kept"] / n if n else None,
                "object_share_of_kept_pixels": row["object_pixels_kept"] / n if n else None,
                "object_share_of_all_pixels": row["object_pixels"] / n if n else None,
                "key_object_area_kept": row["key_kept"] / n if n else None,
            }
        )
    n = sum(r["correct"] for r in rows.values())
    total = {k: sum(r[k] for r in rows.values()) for k in next(iter(rows.values())) if k != "scene"}
    return {
        "method": f"SLIC ({n_segments} segments), greedy removal, scored against the ground truth",
        "seed": seed,
        "n_images": n_images,
        "fill": fill,
        "overall": {
            "correct": n,
            "mean_segments_kept": total["segments_kept"] / n if n else None,
            "mean_pixels_kept": total["pixels_kept"] / n if n else None,
            "object_share_of_kept_pixels": total["object_pixels_kept"] / n if n else None,
            "object_share_of_all_pixels": total["object_pixels"] / n if n else None,
            "key_object_area_kept": total["key_kept"] / n if n else None,
        },
        "method1_scenes": out,
        "scenes": [],
        "examples": [],
    }


def method1_table(report: dict) -> str:
    """Markdown for ``demo_world_method1``."""
    fmt = lambda v: "–" if v is None else f"{v:.0%}"  # noqa: E731
    lines = [
        "| scene | images | correct | segments kept | pixels kept | objects in kept pixels | objects in all pixels | key object's area kept |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in [
        *report["method1_scenes"],
        {"scene": "**all**", "images": report["n_images"], **report["overall"]},
    ]:
        seg = r["mean_segments_kept"]
        lines.append(
            f"| {r['scene']} | {r['images']} | {r['correct']} | "
            f"{'–' if seg is None else f'{seg:.1f}'} | {fmt(r['mean_pixels_kept'])} | "
            f"{fmt(r['object_share_of_kept_pixels'])} | {fmt(r['object_share_of_all_pixels'])} | "
            f"{fmt(r['key_object_area_kept'])} |"
        )
    return "\n".join(lines) + "\n"
