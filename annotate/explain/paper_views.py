"""Pages of the paper reports (issue 17): minimal images, why these objects, unit ablation.
They read the JSON the commands stored under DATA_DIR/paper/ (no torch here)."""

from __future__ import annotations

from django.http import Http404
from django.shortcuts import render

from annotate.explain.paper import KINDS, available_reports, read_report
from core.access import requires

COMMANDS = {
    "minimal": "python manage.py minimal_images --network demo-places --demo-world --n-images 200",
    "why": "python manage.py why_objects --network demo-places",
    "ablation": "python manage.py ablate --network demo-places --layer conv5",
}


@requires("explain.use")
def index(request):
    return render(
        request, "explain/paper_index.html", {"reports": available_reports(), "commands": COMMANDS}
    )


def _report(network: str, kind: str) -> dict:
    report = read_report(network, kind) if kind in KINDS else None
    if report is None:
        raise Http404(f"no {kind} report for {network}: run `{COMMANDS.get(kind, '')}`")
    return report


@requires("explain.use")
def minimal(request, network: str):
    report = _report(network, "minimal")
    examples = report.get("examples") or report.get("images") or []
    context = {"network": network, "report": report, "examples": examples}
    return render(request, "explain/paper_minimal.html", context)


@requires("explain.use")
def why(request, network: str):
    from annotate.explain.paper_plots import scatter_plot

    report = _report(network, "why")
    rows = report["objects"]
    names = [r["object"] for r in rows]
    det = [r["detectors"] for r in rows]

    def note(key):
        c = report[key]
        if c["pearson_r"] is None:
            return "r undefined (a constant variable)"
        return f"Pearson r = {c['pearson_r']:.2f}, Spearman r = {c['spearman_r']:.2f}, n = {c['n']}"

    plots = [
        scatter_plot(
            xs=[r["frequency"] * 100 for r in rows],
            ys=det,
            labels=names,
            title="Detectors vs object frequency",
            note=note("detectors_vs_frequency"),
            x_label="images with the object (%)",
            y_label="detector units",
        ),
        scatter_plot(
            xs=[r["discriminative_scenes"] for r in rows],
            ys=det,
            labels=names,
            title="Detectors vs discriminative scenes",
            note=note("detectors_vs_discriminative"),
            x_label="scene classes it is most discriminative for",
            y_label="detector units",
        ),
    ]
    rows = sorted(rows, key=lambda r: (-r["detectors"], r["object"]))
    return render(
        request,
        "explain/paper_why.html",
        {"network": network, "report": report, "rows": rows, "plots": plots},
    )


@requires("explain.use")
def ablation(request, network: str):
    report = _report(network, "ablation")
    names = report["classes"]
    base = report["baseline"]["per_class"]
    concepts = []
    for row in sorted(report["concepts"], key=lambda r: -len(r["units"])):
        drops = [
            ((b or 0) - (a or 0), n)
            for a, b, n in zip(row["removed"]["per_class"], base, names, strict=True)
            if a is not None and b is not None
        ]
        drop, hit = max(drops) if drops else (0.0, "")
        concepts.append({**row, "hit": hit, "drop": drop})
    return render(
        request,
        "explain/paper_ablation.html",
        {"network": network, "report": report, "concepts": concepts},
    )
