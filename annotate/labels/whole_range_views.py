"""The whole-range report page (issue 16): per layer, the top band next to the whole-range
measures; crowd labels against automatic labels by the same measures (per layer and category);
units whose label holds at the top but fails over the range; worker reliabilities from the noise
model. HTML with server-rendered SVG, ``?format=csv`` for the per-unit table."""

from django.shortcuts import render
from django.urls import reverse

from annotate.labels import reports, whole_range
from annotate.labels.plots import GRID, SEQUENCE_COLORS, TEXT, Svg
from annotate.labels.views import _csv_response, run_picker
from core.access import requires

SERIES = (
    ("top_yes_share", "top 0.5 %: judged present"),
    ("precision", "precision (whole range)"),
    ("recall", "recall (whole range)"),
    ("f1", "F1 (whole range)"),
)


def measures_chart(*, groups: list[dict], title: str) -> str:
    """Grouped bars in [0, 1]: per group the top band's yes share and the whole-range
    precision, recall and F1 (a missing value draws no bar and says so in its tooltip)."""
    width, height = max(520, 150 * len(groups) + 140), 360
    left, right, top, bottom = 56, 20, 64, 56
    plot_w, plot_h = width - left - right, height - top - bottom
    svg = Svg(width, height, title)
    svg.text(left, 22, title, size=16, weight="600")
    for i, (_key, label) in enumerate(SERIES):
        x = left + i * 190
        svg.rect(x, 34, 12, 12, SEQUENCE_COLORS[i * 2])
        svg.text(x + 16, 45, label, size=12)
    for tick in (0, 0.25, 0.5, 0.75, 1.0):
        y = top + plot_h * (1 - tick)
        svg.line(left, y, left + plot_w, y, stroke=GRID)
        svg.text(left - 6, y + 4, f"{tick:g}", size=12, anchor="end")
    slot = plot_w / max(1, len(groups))
    bar = slot * 0.8 / len(SERIES)
    for g, group in enumerate(groups):
        x0 = left + g * slot + slot * 0.1
        for i, (key, label) in enumerate(SERIES):
            value = group.get(key)
            tip = f"{group['label']}, {label}: " + ("no value" if value is None else f"{value:.2f}")
            h = plot_h * (value or 0)
            svg.rect(x0 + i * bar, top + plot_h - h, bar * 0.92, h, SEQUENCE_COLORS[i * 2], tip)
        svg.text(left + g * slot + slot / 2, top + plot_h + 18, group["label"], size=12,
                 anchor="middle")  # fmt: skip
    svg.line(left, top + plot_h, left + plot_w, top + plot_h, stroke=TEXT)
    svg.text(left + plot_w / 2, height - 10, "mean over the units with verification answers",
             size=12, anchor="middle")  # fmt: skip
    return svg.render()


def _fmt(estimate) -> str:
    if estimate is None or estimate.value is None:
        return "—"
    if estimate.low is None:
        return f"{estimate.value:.2f}"
    return f"{estimate.value:.2f} [{estimate.low:.2f}, {estimate.high:.2f}]"


def _num(value) -> str:
    return "—" if value is None else f"{value:.2f}"


def _unit_rows(rows, run) -> list[dict]:
    return [
        {
            "unit": r,
            "url": reverse(
                "dissect:unit-detail",
                kwargs={"run_id": run.pk, "layer_name": r.layer, "index": r.unit_index},
            ),
            "top": _num(r.top_yes_share),
            "paper": _num(r.paper_precision),
            "crowd": {m: _fmt(r.crowd.get(m)) for m in whole_range.MEASURES},
            "maps": {m: _fmt(r.maps.get(m)) for m in whole_range.MEASURES} if r.maps else None,
        }
        for r in rows
    ]


def _groups(summary: list[dict], label) -> list[dict]:
    return [{**s, "label": label(s["group"])} for s in summary]


@requires("report.view")
def whole_range_report(request, network: str):
    from annotate.crowd.models import Campaign

    run_id = request.GET.get("run")
    run = reports.run_for_network(
        network=network, run_id=int(run_id) if run_id and run_id.isdigit() else None
    )
    campaigns = list(Campaign.objects.filter(run=run, verification_tasks__isnull=False).distinct())
    rows, workers = [], []
    for campaign in campaigns:
        measures, model, checks = whole_range.campaign_report(campaign=campaign, reps=300)
        rows += measures
        workers += [
            {
                "campaign": campaign.name,
                "worker": w,
                "accuracy": f"{a:.2f}",
                "checks": "{} of {}".format(*checks[w]) if w in checks else "—",
            }
            for w, a in sorted(model.worker_accuracy.items(), key=lambda kv: -kv[1])
        ]
    answered = [r for r in rows if r.images_answered]
    if request.GET.get("format") == "csv":
        header = ["layer", "unit", "label", "source", "category", "images answered", "workers",
                  "top 0.5 % judged present", "paper top-K precision"]  # fmt: skip
        header += [f"{m} ({s})" for s in ("crowd", "maps") for m in whole_range.MEASURES]
        body = [
            [r.layer, r.unit_index, r.concept, r.source, r.category, r.images_answered,
             r.workers, _num(r.top_yes_share), _num(r.paper_precision)]
            + [_fmt(r.crowd.get(m)) for m in whole_range.MEASURES]
            + [_fmt(r.maps.get(m)) if r.maps else "—" for m in whole_range.MEASURES]
            for r in rows
        ]  # fmt: skip
        return _csv_response((header, body), f"{network}-whole-range")
    by_layer = _groups(
        whole_range.summary_by(answered, key=lambda r: (r.layer, r.source)),
        lambda g: f"{g[0]} · {g[1]}",
    )
    by_category = _groups(
        whole_range.summary_by(answered, key=lambda r: (r.category or "?", r.source)),
        lambda g: f"{g[0]} · {g[1]}",
    )
    context = {
        "network": network,
        "run": run,
        "run_picker": run_picker(request, network=network, run=run),
        "report": "whole-range",
        "campaigns": campaigns,
        "units": _unit_rows(rows, run),
        "by_layer": [{**g, **{k: _num(g[k]) for k in g if k not in ("group", "label", "units")}} for g in by_layer],
        "by_category": [{**g, **{k: _num(g[k]) for k in g if k not in ("group", "label", "units")}} for g in by_category],
        "failing": _unit_rows(whole_range.holds_at_top_fails_over_range(answered), run),
        "workers": workers,
        "layer_svg": measures_chart(groups=by_layer, title="Top band vs whole range, per layer and label source") if by_layer else "",
        "category_svg": measures_chart(groups=by_category, title="Crowd vs automatic labels, per category") if by_category else "",
        "holds_at_top": whole_range.HOLDS_AT_TOP,
        "fails_f1": whole_range.FAILS_F1,
        "reps": 300,
    }  # fmt: skip
    return render(request, "labels/whole_range.html", context)
