"""The paper's other findings as runnable reports (issue 17): minimal images (§3.1), why these
objects emerge (§6.3) and unit ablation. Commands compute them and store JSON under
``DATA_DIR/paper/``; the pages only read those files (no torch in the web process).

torch is imported inside the functions.
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from django.conf import settings

__all__ = [
    "KINDS",
    "LABEL_CHOICES",
    "PaperError",
    "report_path",
    "read_report",
    "write_report",
    "available_reports",
    "load_net",
    "unit_labels",
    "minimal_demo",
    "minimal_files",
    "ablation",
    "why_objects",
]

KINDS = ("minimal", "ablation", "why")
LABEL_CHOICES = ("measured", "auto", "crowd", "both")
HELD_OUT_SEED = 2025  # never used in training (seed 1) nor by the demo run (seed 0)
LABEL_SEED = 2024  # the emergence check's scenes


class PaperError(ValueError):
    """A report cannot be made as asked; the message says what to do."""


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def report_path(network: str, kind: str) -> Path:
    if kind not in KINDS:
        raise PaperError(f"unknown report {kind!r}: one of {', '.join(KINDS)}")
    return Path(settings.DATA_DIR) / "paper" / f"{_safe(network)}.{kind}.json"


def write_report(network: str, kind: str, report: dict) -> Path:
    path = report_path(network, kind)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(report, indent=1))
    tmp.replace(path)
    return path


def read_report(network: str, kind: str) -> dict | None:
    path = report_path(network, kind)
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def available_reports() -> dict[str, list[str]]:
    """{network: [kinds]} of the stored reports."""
    folder = Path(settings.DATA_DIR) / "paper"
    out: dict[str, list[str]] = {}
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        network, _, kind = path.stem.rpartition(".")
        if kind in KINDS:
            out.setdefault(network, []).append(kind)
    return out


def png_data_uri(pixels: np.ndarray) -> str:
    """A small picture for the pages, inlined in the report: PNG up to 64 px, JPEG (quality 90,
    a fifth of the bytes for these noisy renders) above."""
    from PIL import Image

    buffer = io.BytesIO()
    if max(pixels.shape[:2]) <= 64:
        Image.fromarray(pixels).save(buffer, format="PNG")
        kind = "png"
    else:
        Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
        kind = "jpeg"
    return f"data:image/{kind};base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def load_net(name: str):
    """A demo network by name, or a registered network (``dissect.Network`` row) by name."""
    from dissect.demo.networks import DEMO_NETWORK_NAMES
    from dissect.networks import NetworkLoadError, load_network

    try:
        if name in DEMO_NETWORK_NAMES:
            return load_network(name)
        from dissect.models import Network
        from dissect.services import PipelineError, network_load

        row = Network.objects.filter(name=name).first()
        if row is None:
            raise PaperError(
                f"no network named {name!r}: use demo-places, demo-objects or a registered "
                "network's name (`python manage.py register_network` / the networks page)"
            )
        try:
            return network_load(network=row)
        except PipelineError as exc:
            raise PaperError(str(exc)) from exc
    except NetworkLoadError as exc:
        raise PaperError(str(exc)) from exc


def _variant(name: str) -> str:
    from dissect.demo.networks import NETWORK_VARIANT

    if name not in NETWORK_VARIANT:
        raise PaperError(
            f"{name} is not a demo network: the demo-world reports need demo-places or "
            "demo-objects (their classes are the world's scenes or objects)"
        )
    return NETWORK_VARIANT[name]


def unit_labels(
    *,
    network: str,
    net,
    layers: Sequence[str],
    source: str = "measured",
    min_iou: float = 0.04,
    n_images: int = 300,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, dict[int, dict]]:
    """{layer: {unit: {label, category, iou}}}: ``measured`` = automatic labels computed here
    (the emergence check on ``n_images`` fresh scenes, seed 2024); ``auto``/``crowd``/``both``
    = the stored labels of the network's newest labeled run (crowd labels: detectors only)."""
    if source not in LABEL_CHOICES:
        raise PaperError(f"labels: {source!r} is not one of {', '.join(LABEL_CHOICES)}")
    if source == "measured":
        from annotate.explain.emergence_why import measured_unit_labels
        from dissect.networks import resolve_layers

        paths = {layer.alias: layer.path for layer in resolve_layers(net, list(layers))}
        return measured_unit_labels(
            model=net.model,
            layer_paths=paths,
            n_images=n_images,
            seed=LABEL_SEED,
            min_iou=min_iou,
            progress=progress,
        )
    from annotate.explain.selectors import labeled_units
    from dissect.models import Network

    row = Network.objects.filter(name=network).first()
    if row is None:
        raise PaperError(
            f"network {network!r} is not registered, so it has no stored labels: use "
            "--labels measured, or run the demo (`python manage.py demo`) first"
        )
    _, units = labeled_units(network=row, source=source, min_iou=min_iou)
    out: dict[str, dict[int, dict]] = {layer: {} for layer in layers}
    for u in units:
        if u.layer in out and u.unit not in out[u.layer]:
            out[u.layer][u.unit] = {
                "unit": u.unit,
                "label": u.concept,
                "category": u.category,
                "iou": u.score,
                "source": u.source,
            }
    if not any(out.values()):
        raise PaperError(
            f"network {network} has no {source} labels on {', '.join(layers)}: compute automatic "
            "labels (`python manage.py auto_label RUN_ID`), or use --labels measured"
        )
    return out


def minimal_demo(
    *,
    network: str,
    n_images: int = 200,
    seed: int = HELD_OUT_SEED,
    fill: str = "smooth",
    examples: int = 6,
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Method 2 on fresh demo scenes; examples carry each removal step's image (PNG data URI)."""
    from annotate.explain.minimal import demo_world_minimal, fill_removed, ground_truth_segments
    from dissect.demo.world import render

    if _variant(network) != "scenes":
        raise PaperError("minimal images count scene classes: use demo-places")
    net = load_net(network)
    report = demo_world_minimal(
        model=net.model,
        preprocessing=net.preprocessing,
        n_images=n_images,
        seed=seed,
        fill=fill,
        keep_examples=examples,
        progress=progress,
    )
    report["network"] = network
    for ex in report["examples"]:
        sample = render(seed, ex["index"], size=net.input_size, variant="scenes")
        segments, _ = ground_truth_segments(sample.object)
        ex["image"] = png_data_uri(sample.image)
        removed: list[int] = []
        for step in ex["steps"]:
            trial = removed + [step["segment"]]
            step["name"] = ex["segments"][step["segment"]]
            step["class"] = net.class_names[step["predicted"]]
            step["image"] = png_data_uri(
                fill_removed(sample.image, np.isin(segments, trial), mode=fill)
            )
            if step["correct"]:
                removed = trial
        ex["class"] = net.class_names[ex["target"]]
        ex["kept_names"] = [ex["segments"][k] for k in ex["kept"]]
    return report


def minimal_demo_slic(
    *,
    network: str,
    n_images: int = 100,
    seed: int = HELD_OUT_SEED,
    n_segments: int = 24,
    fill: str = "smooth",
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Method 1 (SLIC) on fresh demo scenes, scored against their ground truth afterwards."""
    from annotate.explain.minimal import demo_world_method1

    if _variant(network) != "scenes":
        raise PaperError("minimal images count scene classes: use demo-places")
    net = load_net(network)
    report = demo_world_method1(
        model=net.model,
        preprocessing=net.preprocessing,
        n_images=n_images,
        seed=seed,
        n_segments=n_segments,
        fill=fill,
        progress=progress,
    )
    report["network"] = network
    return report


def minimal_files(
    *,
    network: str,
    paths: Sequence[str | Path],
    n_segments: int = 24,
    fill: str = "smooth",
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Method 1 on image files: SLIC segments of the network's view, greedy removal from the
    network's own prediction. Unreadable files are listed, not fatal."""
    from annotate.explain.minimal import fill_removed, method1_report
    from dissect.images import BadImageError, load_rgb, network_view

    net = load_net(network)
    images, failed = [], []
    for i, path in enumerate(paths):
        try:
            view = np.asarray(network_view(load_rgb(path), net.preprocessing))
        except BadImageError as exc:
            failed.append({"path": str(path), "reason": str(exc)})
            continue
        report, _, segments = method1_report(
            model=net.model,
            preprocessing=net.preprocessing,
            class_names=net.class_names,
            image=view,
            n_segments=n_segments,
            fill=fill,
        )
        report["path"] = str(path)
        report["image"] = png_data_uri(view)
        removed: list[int] = []
        for step in report["steps"]:
            trial = removed + [step["segment"]]
            step["name"] = f"segment {step['segment']}"
            step["class"] = step["predicted_class"]
            step["image"] = png_data_uri(fill_removed(view, np.isin(segments, trial), mode=fill))
            if step["correct"]:
                removed = trial
        images.append(report)
        if progress:
            progress(i + 1, len(paths))
    return {
        "network": network,
        "method": f"SLIC ({n_segments} segments), greedy removal",
        "fill": fill,
        "images": images,
        "failed": failed,
    }


def _held_out(network: str, n_images: int, seed: int, size: int):
    from dissect.demo.world import render_arrays

    return render_arrays(seed, 0, n_images, size=size, variant=_variant(network))


def ablation(
    *,
    network: str,
    layer: str = "conv5",
    n_images: int = 300,
    seed: int = HELD_OUT_SEED,
    labels: str = "measured",
    label_images: int = 300,
    min_iou: float = 0.04,
    top_k: int = 5,
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Ablation report of ``layer`` on ``n_images`` held-out demo images."""
    from annotate.explain.ablation import ablation_report

    net = load_net(network)
    labeled = unit_labels(
        network=network,
        net=net,
        layers=[layer],
        source=labels,
        min_iou=min_iou,
        n_images=label_images,
    )
    images, classes = _held_out(network, n_images, seed, net.input_size)
    report = ablation_report(
        net=net,
        layer=layer,
        images=images,
        labels=classes,
        unit_labels=labeled.get(layer, {}),
        top_k=top_k,
        progress=progress,
    )
    report.update(network=network, seed=seed, labels=labels, min_iou=min_iou)
    return report


def why_objects(
    *,
    network: str,
    layers: Sequence[str] = ("conv5", "pool5"),
    labels: str = "measured",
    n_images: int = 500,
    min_iou: float = 0.04,
    top: int = 1,
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Detectors per object class (units of ``layers`` labeled with an object) against object
    frequency and discriminativeness on ``n_images`` fresh scenes (seed 2024: the scenes the
    measured labels come from)."""
    from annotate.explain.emergence_why import presence_table, why_objects_report
    from dissect.demo.world import LABELS, OBJECT_NAMES, SCENES, label_number, render

    net = load_net(network)
    labeled = unit_labels(
        network=network,
        net=net,
        layers=list(layers),
        source=labels,
        min_iou=min_iou,
        n_images=n_images,
        progress=progress,
    )
    objects = set(OBJECT_NAMES)
    detectors: dict[str, int] = {}
    for per_unit in labeled.values():
        for lab in per_unit.values():
            name = str(lab["label"]).strip().lower().replace(" ", "_")
            if name in objects and lab.get("category", "object") in ("object", ""):
                detectors[name] = detectors.get(name, 0) + 1
    maps, scenes = [], []
    for i in range(n_images):
        sample = render(LABEL_SEED, i, size=net.input_size, variant="scenes")
        maps.append(sample.object)
        scenes.append(sample.class_index)
    numbers = [label_number("object", o) for o in OBJECT_NAMES]
    presence = presence_table(maps, numbers)
    report = why_objects_report(
        object_names=OBJECT_NAMES,
        scene_names=SCENES,
        presence=presence,
        scenes=np.asarray(scenes),
        detectors=detectors,
        top=top,
        labels_source=labels,
    )
    report.update(
        network=network, layers=list(layers), min_iou=min_iou, seed=LABEL_SEED, n_labels=len(LABELS)
    )
    return report
