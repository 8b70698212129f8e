"""What the detectors do: zero chosen units during the forward pass and measure per-class
accuracy on held-out images (after Bau et al., PNAS 2020, on the ICLR'15 networks' descendants).

- ``ablate_units(net, {layer: units})``: a context manager; forward hooks (``dissect.networks``'
  ``forward_hooks``) zero the listed channels of each layer's output in place, or every channel
  *but* those with ``keep_only=True``. The hooks are removed on exit: weights are never touched.
  Use it under ``torch.inference_mode()`` (in-place edits of outputs that autograd saved would
  break a backward pass).
- ``class_accuracy``: per-class accuracy and mean correct-class probability.
- ``rank_units``: each unit of a layer zeroed alone; per class, the units whose removal costs that
  class most (accuracy drop, then probability drop).
- ``ablation_report``: the JSON the command writes and the page shows: baseline, the single-unit
  ranking, per labeled concept "remove its units" / "keep only its units", and per class "remove
  its top-k units" against k random units.

Plain torch/numpy: no Django.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager

import numpy as np
import torch

from dissect.networks.base import LoadedNetwork
from dissect.networks.layers import ResolvedLayer, forward_hooks, resolve_layers

__all__ = [
    "ablate_units",
    "class_accuracy",
    "rank_units",
    "ablation_report",
    "LayerAblator",
    "class_auc",
    "layer_tail",
    "ablation_tables",
]


@contextmanager
def ablate_units(
    net: LoadedNetwork, units: Mapping[str, Sequence[int]], *, keep_only: bool = False
) -> Iterator[None]:
    """Zero ``units`` {layer alias or path: channel indexes} in every forward pass inside the
    block (``keep_only``: zero all the other channels of those layers instead)."""
    layers = resolve_layers(net, list(units))
    chosen: dict[str, torch.Tensor] = {}
    for name, layer in zip(units, layers, strict=True):
        chosen[layer.path] = torch.as_tensor(
            sorted({int(u) for u in units[name]}), dtype=torch.long
        )

    def zero(layer: ResolvedLayer, output: torch.Tensor) -> None:
        index = chosen[layer.path]
        if len(index) and int(index.max()) >= output.shape[1]:
            raise ValueError(
                f"layer {layer.alias} has {output.shape[1]} units (0..{output.shape[1] - 1}): "
                f"unit {int(index.max())} does not exist"
            )
        if keep_only:
            keep = torch.zeros(output.shape[1], dtype=torch.bool, device=output.device)
            keep[index.to(output.device)] = True
            output[:, ~keep] = 0
        elif len(index):
            output[:, index.to(output.device)] = 0

    with forward_hooks(layers, zero):
        yield


def _inputs(images: np.ndarray, preprocessing: dict) -> torch.Tensor:
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div_(255.0)
    mean = torch.tensor(preprocessing["mean"], dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(preprocessing["std"], dtype=torch.float32).view(1, 3, 1, 1)
    return (x - mean) / std


@torch.inference_mode()
def predict(net: LoadedNetwork, x: torch.Tensor, *, batch_size: int = 250) -> torch.Tensor:
    """Softmax probabilities (N, C) of normalized inputs ``x`` (N, 3, S, S)."""
    out = [
        torch.softmax(net.model(x[i : i + batch_size]).float(), dim=1)
        for i in range(0, len(x), batch_size)
    ]
    return torch.cat(out)


def class_accuracy(
    probs: torch.Tensor, labels: np.ndarray, num_classes: int
) -> tuple[np.ndarray, np.ndarray, float]:
    """(per-class accuracy (C,), per-class mean correct-class probability (C,), overall
    accuracy). Classes without images get NaN."""
    labels = np.asarray(labels)
    pred = probs.argmax(1).numpy()
    p_true = probs[torch.arange(len(labels)), torch.as_tensor(labels)].numpy()
    acc = np.full(num_classes, np.nan)
    prob = np.full(num_classes, np.nan)
    for c in range(num_classes):
        sel = labels == c
        if sel.any():
            acc[c] = float((pred[sel] == c).mean())
            prob[c] = float(p_true[sel].mean())
    return acc, prob, float((pred == labels).mean())


def _measure(net, x, labels, units=None, keep_only=False):
    if units:
        with ablate_units(net, units, keep_only=keep_only):
            probs = predict(net, x)
    else:
        probs = predict(net, x)
    return class_accuracy(probs, labels, net.num_classes)


def layer_tail(net: LoadedNetwork, layer: str) -> torch.nn.Module | None:
    """The part of the network after ``layer`` as a module of the layer's output (a torch.fx
    split), or None when the model is not traceable or later nodes also read earlier ones
    (skip connections around the layer). Lets many ablations of one layer share its input."""
    import torch.fx as fx

    (resolved,) = resolve_layers(net, [layer])
    try:
        traced = fx.symbolic_trace(net.model)
    except Exception:  # noqa: BLE001 - many custom models are not traceable
        return None
    nodes = list(traced.graph.nodes)
    at = next(
        (i for i, n in enumerate(nodes) if n.op == "call_module" and n.target == resolved.path),
        None,
    )
    if at is None:
        return None
    after = nodes[at + 1 :]
    allowed = {nodes[at], *after}
    if any(a not in allowed for n in after for a in n.all_input_nodes):
        return None
    graph = fx.Graph()
    env = {nodes[at]: graph.placeholder("activation")}
    for node in after:
        env[node] = graph.node_copy(node, lambda a: env[a])
    return fx.GraphModule(traced, graph).eval()


class LayerAblator:
    """Accuracy of the network with units of one layer zeroed, for many unit sets: the layer's
    output is computed once and only the rest of the network re-runs (``layer_tail``), or, when
    the model cannot be split, every forward pass runs whole under ``ablate_units``."""

    def __init__(self, net: LoadedNetwork, layer: str, x: torch.Tensor, labels: np.ndarray):
        self.net, self.layer, self.x, self.labels = net, layer, x, np.asarray(labels)
        self.tail = layer_tail(net, layer)
        (resolved,) = resolve_layers(net, [layer])
        captured: list[torch.Tensor] = []

        def keep(_layer, out):
            captured.append(out.detach().clone())

        with forward_hooks([resolved], keep):
            self.base = predict(net, x)
        self.units = int(captured[0].shape[1])
        self.activation = torch.cat(captured) if self.tail is not None else None

    def probs(self, units: Sequence[int] = (), keep_only: bool = False) -> torch.Tensor:
        units = sorted({int(u) for u in units})
        if not units and not keep_only:
            return self.base
        if self.tail is None:
            with ablate_units(self.net, {self.layer: units}, keep_only=keep_only):
                return predict(self.net, self.x)
        zero = torch.zeros(self.units, dtype=torch.bool)
        zero[units] = True
        if keep_only:
            zero = ~zero
        out = []
        with torch.inference_mode():
            for i in range(0, len(self.activation), 250):
                a = self.activation[i : i + 250].clone()
                a[:, zero] = 0
                out.append(torch.softmax(self.tail(a).float(), dim=1))
        return torch.cat(out)

    def measure(self, units: Sequence[int] = (), keep_only: bool = False):
        return class_accuracy(self.probs(units, keep_only), self.labels, self.net.num_classes)


def rank_units(
    net: LoadedNetwork,
    layer: str,
    x: torch.Tensor,
    labels: np.ndarray,
    *,
    progress: Callable[[int, int], None] | None = None,
    ablator: LayerAblator | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Zero each unit of ``layer`` alone: (accuracy drop (U, C), correct-probability drop (U, C))
    against the intact network."""
    ablator = ablator or LayerAblator(net, layer, x, labels)
    base_acc, base_prob, _ = ablator.measure()
    acc_drop = np.zeros((ablator.units, net.num_classes))
    prob_drop = np.zeros((ablator.units, net.num_classes))
    for u in range(ablator.units):
        acc, prob, _ = ablator.measure([u])
        acc_drop[u] = base_acc - acc
        prob_drop[u] = base_prob - prob
        if progress:
            progress(u + 1, ablator.units)
    return acc_drop, prob_drop


def class_auc(scores: np.ndarray, positives: np.ndarray) -> float:
    """Area under the ROC curve of ``scores`` for ``positives`` (Mann-Whitney, ties count half);
    NaN without both kinds. Unlike accuracy it cannot be raised by answering one class always."""
    from scipy.stats import rankdata

    scores = np.asarray(scores, dtype=np.float64)
    positives = np.asarray(positives, dtype=bool)
    n_pos, n_neg = int(positives.sum()), int((~positives).sum())
    if not n_pos or not n_neg:
        return float("nan")
    ranks = rankdata(scores)
    return float((ranks[positives].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _order(acc_drop: np.ndarray, prob_drop: np.ndarray, c: int) -> list[int]:
    """Units ranked by their cost to class ``c``: accuracy drop, then probability drop."""
    return sorted(range(len(acc_drop)), key=lambda u: (-acc_drop[u, c], -prob_drop[u, c], u))


def _r(v: float) -> float | None:
    return None if np.isnan(v) else round(float(v), 4)


def ablation_report(
    *,
    net: LoadedNetwork,
    layer: str,
    images: np.ndarray,
    labels: np.ndarray,
    unit_labels: Mapping[int, dict] | None = None,
    top_k: int = 5,
    n_random: int = 5,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """The ablation report of ``layer`` on ``images`` (N, S, S, 3) uint8 in the network's view
    with true ``labels`` (N,). ``unit_labels`` {unit: {label, category, iou}} names the detectors
    (concepts come from them). JSON-friendly."""
    x = _inputs(images, net.preprocessing)
    names = list(net.class_names)
    unit_labels = dict(unit_labels or {})
    ablator = LayerAblator(net, layer, x, labels)
    base_acc, base_prob, base_overall = ablator.measure()
    acc_drop, prob_drop = rank_units(net, layer, x, labels, progress=progress, ablator=ablator)
    n_units = len(acc_drop)
    rng = np.random.default_rng(seed)

    def describe(u: int) -> dict:
        lab = unit_labels.get(u) or {}
        return {
            "unit": u,
            "label": lab.get("label", ""),
            "category": lab.get("category", ""),
            "iou": lab.get("iou"),
        }

    classes = []
    for c, name in enumerate(names):
        if np.isnan(base_acc[c]):
            continue
        order = _order(acc_drop, prob_drop, c)
        top = order[:top_k]
        acc, _, overall = ablator.measure(top)
        others = [o for o in range(len(names)) if o != c and not np.isnan(base_acc[o])]
        keep_probs = ablator.probs(order[: max(top_k * 4, 1)], keep_only=True)
        keep_acc, _, _ = class_accuracy(keep_probs, labels, len(names))
        elsewhere = np.asarray(labels) != c
        # keeping only a class's units can make the network answer that class everywhere:
        # the share of the other classes' images it then calls ``c`` says whether it did
        keep_false = float((keep_probs.argmax(1).numpy()[elsewhere] == c).mean())
        is_c = np.asarray(labels) == c
        auc_intact = class_auc(ablator.base[:, c].numpy(), is_c)
        auc_kept = class_auc(keep_probs[:, c].numpy(), is_c)
        random_acc = []
        for _ in range(n_random):
            pick = rng.choice(n_units, size=top_k, replace=False).tolist()
            r_acc, _, _ = ablator.measure(pick)
            random_acc.append(r_acc[c])
        classes.append(
            {
                "class": name,
                "images": int((np.asarray(labels) == c).sum()),
                "accuracy": _r(base_acc[c]),
                "top_units": [
                    {
                        **describe(u),
                        "accuracy_drop": _r(acc_drop[u, c]),
                        "probability_drop": _r(prob_drop[u, c]),
                    }
                    for u in top
                ],
                "remove_top_k": {
                    "k": top_k,
                    "accuracy": _r(acc[c]),
                    "other_classes_accuracy": _r(np.nanmean(acc[others])) if others else None,
                    "other_classes_before": _r(np.nanmean(base_acc[others])) if others else None,
                    "overall": _r(overall),
                },
                "remove_random_k": {"k": top_k, "accuracy": _r(float(np.mean(random_acc)))},
                "keep_only_top": {
                    "k": max(top_k * 4, 1),
                    "accuracy": _r(keep_acc[c]),
                    "others_called_it": _r(keep_false),
                    "auc": _r(auc_kept),
                },
                "auc": _r(auc_intact),
            }
        )
    concepts: dict[tuple[str, str], list[int]] = {}
    for u, lab in unit_labels.items():
        if lab.get("label"):
            concepts.setdefault((lab["label"], lab.get("category", "")), []).append(int(u))
    concept_rows = []
    for (concept, category), units in sorted(concepts.items()):
        acc, _, overall = ablator.measure(units)
        keep, _, keep_overall = ablator.measure(units, keep_only=True)
        concept_rows.append(
            {
                "concept": concept,
                "category": category,
                "units": sorted(units),
                "removed": {"overall": _r(overall), "per_class": [_r(v) for v in acc]},
                "kept_only": {"overall": _r(keep_overall), "per_class": [_r(v) for v in keep]},
            }
        )
    all_acc, _, all_overall = _measure(net, x, labels, {layer: list(range(n_units))})  # hooks
    return {
        "network": net.arch,
        "layer": layer,
        "units": n_units,
        "images": len(labels),
        "classes": names,
        "baseline": {
            "overall": _r(base_overall),
            "per_class": [_r(v) for v in base_acc],
            "probability": [_r(v) for v in base_prob],
        },
        "all_units_zeroed": {"overall": _r(all_overall), "per_class": [_r(v) for v in all_acc]},
        "per_class": classes,
        "concepts": concept_rows,
        "split": "layer tail (torch.fx)" if ablator.tail is not None else "hooks, whole network",
        "ranking_rule": "each unit zeroed alone; per class, largest accuracy drop first, ties by "
        "the drop in mean correct-class probability",
    }


def ablation_tables(report: dict) -> str:
    """Markdown: per class, accuracy intact / without its top-k units / without k random units /
    keeping only its top 4k units; then per concept, accuracy with its units removed or kept."""
    lines = [
        "| class | images | accuracy | − top-k units | other classes (before → after) | − k random units | only top 4k units (other classes' images called it; AUC of the class score, intact → kept) | top units (label) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    f = lambda v: "–" if v is None else f"{v:.0%}"  # noqa: E731
    for row in report["per_class"]:
        rm = row["remove_top_k"]
        units = ", ".join(
            f"{u['unit']}" + (f" ({u['label']})" if u["label"] else "") for u in row["top_units"]
        )
        lines.append(
            f"| {row['class']} | {row['images']} | {f(row['accuracy'])} | {f(rm['accuracy'])} | "
            f"{f(rm['other_classes_before'])} → {f(rm['other_classes_accuracy'])} | "
            f"{f(row['remove_random_k']['accuracy'])} | {f(row['keep_only_top']['accuracy'])} "
            f"({f(row['keep_only_top']['others_called_it'])}; AUC {row['auc']:.3f} → "
            f"{row['keep_only_top']['auc']:.3f}) | "
            f"{units} |"
        )
    lines.append(
        f"\nIntact: {f(report['baseline']['overall'])} overall; all {report['units']} units of "
        f"{report['layer']} zeroed: {f(report['all_units_zeroed']['overall'])}.\n"
    )
    if report["concepts"]:
        names = report["classes"]
        base = report["baseline"]["per_class"]
        lines.append(
            "| concept | units | overall, removed | overall, kept only | class hit hardest when removed |"
        )
        lines.append("|---|---|---|---|---|")
        for row in sorted(report["concepts"], key=lambda r: -len(r["units"])):
            drops = [
                ((b or 0) - (a or 0), n)
                for a, b, n in zip(row["removed"]["per_class"], base, names, strict=True)
                if a is not None and b is not None
            ]
            drop, hit = max(drops) if drops else (0.0, "–")
            lines.append(
                f"| {row['concept']} ({row['category']}) | {len(row['units'])} | "
                f"{f(row['removed']['overall'])} | {f(row['kept_only']['overall'])} | "
                f"{hit} (−{drop:.0%}) |"
            )
    return "\n".join(lines) + "\n"
