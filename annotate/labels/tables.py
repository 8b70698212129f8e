"""Report data -> (header, rows) tables, shared by the HTML pages and the CSV downloads."""

from core.concepts.vocabulary import CATEGORY_KEYS, CATEGORY_LABELS

Table = tuple[list[str], list[list]]


def _round(value, digits=3):
    return "" if value is None else round(value, digits)


def category_table(rows: list[dict]) -> Table:
    header = ["layer", "units", "answers"] + [f"{CATEGORY_LABELS[c]} (%)" for c in CATEGORY_KEYS]
    body = [
        [r["layer"], r["units"], r["answers"]]
        + [round(r["category_percent"][c], 2) for c in CATEGORY_KEYS]
        for r in rows
    ]
    return header, body


def detector_table(rows: list[dict]) -> Table:
    header = ["layer", "units", "labeled units", "mean precision", "mean agreement", "detectors"]
    header += [f"detectors: {CATEGORY_LABELS[c]}" for c in CATEGORY_KEYS]
    body = [
        [
            r["layer"],
            r["units"],
            r["labeled_units"],
            _round(r["mean_precision"]),
            _round(r["mean_agreement"]),
            r["detectors"],
        ]
        + [r["detectors_by_category"][c] for c in CATEGORY_KEYS]
        for r in rows
    ]
    return header, body


def concept_table(data: dict) -> Table:
    header = ["concept"] + list(data["layers"]) + ["total"]
    body = [
        [r["concept"]] + [r["counts"][layer] for layer in data["layers"]] + [r["total"]]
        for r in data["rows"]
    ]
    return header, body


def precision_table(histogram: dict) -> Table:
    edges = histogram["edges"]
    layers = list(histogram["layers"])
    header = ["precision from", "precision to"] + layers + ["all layers"]
    body = []
    for i in range(len(edges) - 1):
        counts = [histogram["layers"][layer][i] for layer in layers]
        body.append([round(edges[i], 2), round(edges[i + 1], 2)] + counts + [sum(counts)])
    return header, body


def comparison_table(comparison: dict) -> Table:
    networks = list(comparison["networks"])
    header = ["layer", "network", "answers"]
    header += [f"{CATEGORY_LABELS[c]} (%)" for c in CATEGORY_KEYS]
    header += ["mean precision", "detectors"]
    body = []
    for layer in comparison["layers"]:
        for network in networks:
            r = next(x for x in comparison["networks"][network] if x["layer"] == layer)
            body.append(
                [layer, network, r["answers"]]
                + [round(r["category_percent"][c], 2) for c in CATEGORY_KEYS]
                + [_round(r["mean_precision"]), r["detectors"]]
            )
    return header, body


def agreement_layer_table(report: dict) -> Table:
    header = [
        "layer",
        "units",
        "answers",
        "Fleiss' kappa (category)",
        "Krippendorff's alpha (category)",
        "concept agreement (pairs)",
        "Krippendorff's alpha (tile flags)",
    ]
    body = [
        [
            r["layer"],
            r["units"],
            r["answers"],
            _round(r["fleiss_kappa_category"]),
            _round(r["alpha_category"]),
            _round(r["concept_agreement"]),
            _round(r["alpha_tile_flags"]),
        ]
        for r in report["layers"]
    ]
    return header, body


def agreement_worker_table(report: dict) -> Table:
    header = [
        "worker",
        "answers",
        "concept = consensus",
        "category = consensus",
        "category skill",
        "tile-flag skill",
    ]
    body = [
        [
            w["worker"],
            w["answers"],
            _round(w["concept_agreement"]),
            _round(w["category_agreement"]),
            _round(w["category_skill"]),
            _round(w["flag_skill"]),
        ]
        for w in report["workers"]
    ]
    return header, body


def agreement_pair_table(report: dict) -> Table:
    header = ["worker A", "worker B", "common units", "Cohen's kappa", "agreement"]
    body = [
        [
            p["worker_a"],
            p["worker_b"],
            p["common_items"],
            _round(p["kappa"]),
            _round(p["percent_agreement"]),
        ]
        for p in report["pairs"]
    ]
    return header, body
