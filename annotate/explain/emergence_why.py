"""Why these objects emerge (Zhou et al., ICLR 2015, §6.3): the number of detector units per
object class against (a) how often the object occurs and (b) for how many scene classes it is
among the most discriminative objects.

Measures (stated in the report):

- frequency: the share of images of the set in which the object is visible (ground truth);
- discriminativeness of object o for scene s: P(o visible | s) − P(o visible | not s); o counts
  for s when it is among the ``top`` objects of s by that score and the score is positive;
- detectors: units (of the chosen layers) whose label is the object.

Pearson and Spearman r via scipy. Plain numpy: no Django, no torch at import.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

__all__ = [
    "DISCRIMINATIVE_TOP",
    "correlations",
    "presence_table",
    "discriminative_counts",
    "why_objects_report",
    "measured_unit_labels",
]

DISCRIMINATIVE_TOP = 1


def correlations(x: Sequence[float], y: Sequence[float]) -> dict:
    """Pearson and Spearman r (with two-sided p-values) of ``x`` and ``y``; None where a
    variable is constant."""
    from scipy import stats

    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return {
            "n": len(x),
            "pearson_r": None,
            "pearson_p": None,
            "spearman_r": None,
            "spearman_p": None,
        }
    pearson = stats.pearsonr(x, y)
    spearman = stats.spearmanr(x, y)
    return {
        "n": len(x),
        "pearson_r": float(pearson.statistic),
        "pearson_p": float(pearson.pvalue),
        "spearman_r": float(spearman.statistic),
        "spearman_p": float(spearman.pvalue),
    }


def presence_table(object_maps: Sequence[np.ndarray], object_numbers: Sequence[int]) -> np.ndarray:
    """(N images, O objects) bool: whether each object's label number occurs in each map."""
    table = np.zeros((len(object_maps), len(object_numbers)), dtype=bool)
    for i, labels in enumerate(object_maps):
        present = set(np.unique(labels).tolist())
        table[i] = [n in present for n in object_numbers]
    return table


def discriminative_counts(
    presence: np.ndarray, scenes: np.ndarray, n_scenes: int, *, top: int = DISCRIMINATIVE_TOP
) -> tuple[np.ndarray, np.ndarray]:
    """(per object: the number of scene classes for which it is among the ``top`` most
    discriminative objects, (S, O) the score P(o | s) − P(o | not s))."""
    presence = np.asarray(presence, dtype=np.float64)
    scenes = np.asarray(scenes)
    score = np.zeros((n_scenes, presence.shape[1]))
    for s in range(n_scenes):
        inside = scenes == s
        if not inside.any() or inside.all():
            continue
        score[s] = presence[inside].mean(0) - presence[~inside].mean(0)
    counts = np.zeros(presence.shape[1], dtype=np.int64)
    for s in range(n_scenes):
        order = np.argsort(-score[s], kind="stable")[:top]
        for o in order:
            if score[s, o] > 0:
                counts[o] += 1
    return counts, score


def why_objects_report(
    *,
    object_names: Sequence[str],
    scene_names: Sequence[str],
    presence: np.ndarray,
    scenes: np.ndarray,
    detectors: Mapping[str, int],
    top: int = DISCRIMINATIVE_TOP,
    labels_source: str = "",
) -> dict:
    """The JSON report: per object class its detectors, frequency, discriminative scene count
    and the scenes; the correlations of detectors with both."""
    counts, score = discriminative_counts(presence, scenes, len(scene_names), top=top)
    frequency = np.asarray(presence, dtype=np.float64).mean(0)
    rows = []
    for o, name in enumerate(object_names):
        best_for = [
            scene_names[s]
            for s in range(len(scene_names))
            if o in np.argsort(-score[s], kind="stable")[:top] and score[s, o] > 0
        ]
        rows.append(
            {
                "object": name,
                "detectors": int(detectors.get(name, 0)),
                "frequency": round(float(frequency[o]), 4),
                "discriminative_scenes": int(counts[o]),
                "scenes": best_for,
            }
        )
    det = [r["detectors"] for r in rows]
    return {
        "images": int(len(presence)),
        "labels": labels_source,
        "measures": {
            "frequency": "share of images in which the object is visible (ground truth)",
            "discriminative": (
                "scene classes for which the object has the largest"
                if top == 1
                else f"scene classes for which the object is among the {top} objects with the "
                "largest"
            )
            + " P(visible | scene) - P(visible | other scenes) (> 0)",
            "detectors": "units whose label is the object",
        },
        "objects": rows,
        "detectors_vs_frequency": correlations(det, [r["frequency"] for r in rows]),
        "detectors_vs_discriminative": correlations(
            det, [r["discriminative_scenes"] for r in rows]
        ),
    }


def why_table(report: dict) -> str:
    """Markdown: the objects, then the correlations."""
    lines = [
        "| object | detectors | frequency | discriminative for | scenes |",
        "|---|---|---|---|---|",
    ]
    for r in sorted(report["objects"], key=lambda r: (-r["detectors"], r["object"])):
        lines.append(
            f"| {r['object']} | {r['detectors']} | {r['frequency']:.1%} | "
            f"{r['discriminative_scenes']} | {', '.join(r['scenes'])} |"
        )
    lines.append("")
    for key, what in (
        ("detectors_vs_frequency", "frequency"),
        ("detectors_vs_discriminative", "discriminative scenes"),
    ):
        c = report[key]
        if c["pearson_r"] is None:
            lines.append(f"- detectors vs {what}: undefined (a constant variable)")
        else:
            lines.append(
                f"- detectors vs {what}: Pearson r = {c['pearson_r']:.2f} (p = {c['pearson_p']:.2g}), "
                f"Spearman r = {c['spearman_r']:.2f} (p = {c['spearman_p']:.2g}), n = {c['n']}"
            )
    return "\n".join(lines) + "\n"


def measured_unit_labels(
    *,
    model,
    layer_paths: Mapping[str, str],
    n_images: int,
    seed: int,
    min_iou: float = 0.04,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, dict[int, dict]]:
    """Automatic labels measured in-process (the emergence check of ``dissect.demo.emergence``:
    top-0.5 % quantile masks, dataset-pooled IoU with every demo-world label) on ``n_images`` fresh
    scenes of world ``seed``: {layer: {unit: {label, category, iou}}} for units whose best IoU is
    at least ``min_iou``."""
    from dissect.demo.emergence import network_emergence, render_labeled_world

    world = render_labeled_world(n_images=n_images, seed=seed)
    layers = network_emergence(
        model=model, layer_paths=dict(layer_paths), world=world, progress=progress
    )
    out: dict[str, dict[int, dict]] = {}
    for layer in layers:
        out[layer.layer] = {
            row["unit"]: row for row in layer.unit_labels() if row["iou"] >= min_iou
        }
    return out
