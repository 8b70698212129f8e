"""Writes and actions of the explain part: explain an image for the page/API/command (with its
overlay files), and import a Broden-layout dataset as an image set.

torch is imported inside the functions, so the web process can import this module.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

from PIL import Image

from annotate.explain.selectors import (
    DEFAULT_MIN_IOU,
    classifier_kind,
    explain_refusal,
    labeled_units,
    network_notes,
)
from core.errors import AppError
from dissect.models import Network
from dissect.storage import media_url, save_content_addressed

__all__ = [
    "ExplainError",
    "DISPLAY_PX",
    "explain_image",
    "explain_files",
]

DISPLAY_PX = 512


class ExplainError(AppError, ValueError):
    """explain cannot run as asked; the message says what to do (400)."""


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()


def _explain(
    *, network: Network, source: str, image: Image.Image, mask_px: int | None, min_iou: float
):
    from annotate.explain.core import explain
    from dissect.services import PipelineError, network_load

    if not 0.0 <= min_iou <= 1.0:
        raise ExplainError(f"min_iou must be between 0 and 1 (got {min_iou})")
    if network.source == Network.Source.IMPORTED:  # labels but no weights: say so first
        raise ExplainError(explain_refusal(network=network, source=source, min_iou=min_iou))
    run, units = labeled_units(network=network, source=source, min_iou=min_iou)
    if not units:
        raise ExplainError(explain_refusal(network=network, source=source, min_iou=min_iou))
    try:
        net = network_load(network=network)
    except PipelineError as exc:
        raise ExplainError(str(exc)) from exc
    size = int(mask_px or max(net.input_size, 256))
    return run, explain(net=net, units=units, image=image, mask_px=size)


def _what_the_network_knows(network: Network) -> dict:
    """The payload's words on the network: its classes' kind (the page's heading: "scene" or
    "object class") and the notes a user must read first (demo world only, untrained)."""
    return {"class_kind": classifier_kind(network=network), "notes": network_notes(network=network)}


def explain_image(
    *,
    network: Network,
    image: Image.Image,
    source: str = "both",
    mask_px: int | None = None,
    min_iou: float = DEFAULT_MIN_IOU,
) -> dict:
    """Explain ``image`` with ``network``'s labeled units (``source`` crowd, auto or both;
    automatic labels from IoU ``min_iou`` up) and store its overlay files. Returns the
    JSON-friendly payload the page and the API show: scenes, concepts (with color, mask RLE and
    a transparent layer URL), the overlay URL."""
    from annotate.explain.overlay import base_image, concept_color, concept_layer, render_overlay

    run, result = _explain(
        network=network, source=source, image=image, mask_px=mask_px, min_iou=min_iou
    )
    payload = result.as_dict()
    payload.update(
        network=network.name, labels=source, min_iou=min_iou, run_id=run.pk if run else None
    )
    payload.update(_what_the_network_knows(network))
    base = save_content_addressed(
        _png(base_image(result, size_px=DISPLAY_PX)), kind="explain", ext="png"
    )
    overlay = save_content_addressed(
        _png(render_overlay(result, size_px=DISPLAY_PX)), kind="explain", ext="png"
    )
    payload["image_url"] = media_url(base)
    payload["overlay_url"] = media_url(overlay)
    for rank, (concept, entry) in enumerate(zip(result.concepts, payload["concepts"], strict=True)):
        layer = concept_layer(concept, rank, size_px=DISPLAY_PX)
        entry["color"] = "#{:02x}{:02x}{:02x}".format(*concept_color(rank))
        entry["layer_url"] = media_url(
            save_content_addressed(_png(layer), kind="explain", ext="png")
        )
    return payload


def explain_files(
    *,
    network: Network,
    paths: list[Path],
    out_dir: Path,
    source: str = "both",
    mask_px: int | None = None,
    min_iou: float = DEFAULT_MIN_IOU,
    progress=None,
) -> list[dict]:
    """The command's batch: for each image file write ``<stem>.overlay.png`` and ``<stem>.json``
    into ``out_dir``; unreadable files are reported in the summary, not fatal. Returns one
    summary per file {path, ok, error, json, overlay, scene, concepts}."""
    from annotate.explain.overlay import render_overlay
    from dissect.images import BadImageError, load_rgb

    out_dir.mkdir(parents=True, exist_ok=True)
    summaries = []
    for done, path in enumerate(paths, start=1):
        stem = path.stem
        try:
            image = load_rgb(path)
        except BadImageError as exc:
            summaries.append({"path": str(path), "ok": False, "error": str(exc)})
        else:
            run, result = _explain(
                network=network, source=source, image=image, mask_px=mask_px, min_iou=min_iou
            )
            payload = result.as_dict()
            payload.update(
                image=str(path),
                network=network.name,
                labels=source,
                min_iou=min_iou,
                run_id=run.pk if run else None,
                **_what_the_network_knows(network),
            )
            json_path = out_dir / f"{stem}.json"
            overlay_path = out_dir / f"{stem}.overlay.png"
            json_path.write_text(json.dumps(payload) + "\n")
            render_overlay(result, size_px=DISPLAY_PX).save(overlay_path)
            summaries.append(
                {
                    "path": str(path),
                    "ok": True,
                    "json": str(json_path),
                    "overlay": str(overlay_path),
                    "scene": result.scenes[0].label if result.scenes else "",
                    "concepts": [c.concept for c in result.concepts],
                }
            )
        if progress:
            progress(done, len(paths))
    return summaries


def evaluate_demo(
    *,
    n_images: int = 300,
    seed: int = 1,
    source: str = "auto",
    demo_images: int = 1000,
    progress=None,
) -> dict:
    """Evaluate both demo networks' labeled units on ``n_images`` held-out demo-world scenes
    (world seed ``seed``; the demo run dissects seed 0). Runs the demo dissection first when it
    is missing, and computes automatic labels for demo runs that lack them.
    Returns {network name: EvaluationResult}."""
    import numpy as np
    import torch

    from annotate.explain.evaluation import evaluate_localization
    from dissect.autolabel import run_auto_labels
    from dissect.demo.world import OBJECT_NAMES, SCENES, label_number, render
    from dissect.models import AutoLabel
    from dissect.services import demo_runs_create, network_load

    runs = demo_runs_create(n_images=demo_images)
    samples = [render(seed, i, size=128, variant="scenes") for i in range(n_images)]
    images = np.stack([s.image for s in samples])
    object_maps = np.stack([s.object for s in samples]).astype(np.int64)
    scene_index = np.array([SCENES.index(s.scene) for s in samples])
    concept_labels = {name: label_number("object", name) for name in OBJECT_NAMES}
    results = {}
    for run in runs:
        if not AutoLabel.objects.filter(unit__layer__run=run).exists():
            run_auto_labels(run_id=run.pk)
        _, units = labeled_units(network=run.network, source=source, run=run)
        units = [u for u in units if u.category == "object"]
        net = network_load(network=run.network)
        thresholds = {
            layer.name: torch.tensor(
                [
                    t if t is not None else float("inf")
                    for t in layer.units.order_by("index").values_list("threshold", flat=True)
                ]
            )
            for layer in run.layer_set.all()
        }
        is_scene_net = list(net.class_names) == list(SCENES)
        results[run.network.name] = evaluate_localization(
            net=net,
            units=units,
            images=images,
            object_maps=object_maps,
            scene_index=scene_index if is_scene_net else None,
            concept_labels=concept_labels,
            layer_thresholds=thresholds,
            progress=progress,
        )
    return results
