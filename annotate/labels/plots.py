"""Server-side SVG charts (no JavaScript): stacked bars (Fig. 9), grouped stacked bars (network vs
network), plain bars (histograms, counts) and horizontal stacked bars (Fig. 10).

Colors are the Okabe-Ito palette (distinguishable with the common color-vision deficiencies);
every chart has a title, axis labels, a legend and an accessible name.
"""

import math
from dataclasses import dataclass, field
from html import escape

from core.concepts.vocabulary import CATEGORY_KEYS, CATEGORY_LABELS

CATEGORY_COLORS: dict[str, str] = {
    "scene": "#0072B2",
    "object": "#D55E00",
    "region": "#009E73",
    "part": "#CC79A7",
    "material": "#E69F00",
    "color": "#56B4E9",
}
SEQUENCE_COLORS = ["#440154", "#3B528B", "#21918C", "#5EC962", "#B8DE29", "#F0E442", "#888888"]
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif"
TEXT = "#1d2330"
GRID = "#d9dde5"


@dataclass
class Bar:
    """One bar: its label under the axis, an optional group label, and stacked segment values."""

    label: str
    segments: dict[str, float]
    group: str = ""
    gap_before: bool = False
    title: str = ""


@dataclass
class Svg:
    width: int
    height: int
    title: str
    parts: list[str] = field(default_factory=list)

    def text(self, x, y, s, *, size=13, anchor="start", weight="normal", rotate=None, fill=TEXT):
        transform = f' transform="rotate({rotate} {x:.1f} {y:.1f})"' if rotate else ""
        self.parts.append(
            f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" '
            f'font-weight="{weight}" fill="{fill}"{transform}>{escape(str(s))}</text>'
        )

    def rect(self, x, y, w, h, fill, tip=""):
        tooltip = f"<title>{escape(tip)}</title>" if tip else ""
        self.parts.append(
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(w, 0):.1f}" height="{max(h, 0):.1f}" '
            f'fill="{fill}">{tooltip}</rect>'
        )

    def line(self, x1, y1, x2, y2, stroke=GRID, width=1, dash=""):
        dashes = f' stroke-dasharray="{dash}"' if dash else ""
        self.parts.append(
            f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" stroke="{stroke}" '
            f'stroke-width="{width}"{dashes}/>'
        )

    def render(self) -> str:
        return (
            f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {self.width} {self.height}" '
            f'width="{self.width}" height="{self.height}" role="img" '
            f'aria-label="{escape(self.title)}" font-family="{escape(FONT)}">'
            f"<title>{escape(self.title)}</title>"
            f'<rect width="100%" height="100%" fill="#ffffff"/>' + "".join(self.parts) + "</svg>"
        )


def _nice_max(value: float) -> float:
    """The smallest 'round' number (1, 1.5, 2, 2.5, 3, 4, 5, 6, 8 x 10^k) at or above `value`."""
    if value <= 0:
        return 1.0
    magnitude = 10 ** math.floor(math.log10(value))
    for step in (1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10):
        if step * magnitude >= value - 1e-9:
            return step * magnitude
    return 10 * magnitude


def _ticks(top: float, count: int = 5) -> list[float]:
    return [top * i / count for i in range(count + 1)]


def _fmt(value: float, scale: float | None = None) -> str:
    """A number with as many decimals as the axis scale needs (0.125 on a 0-0.3 axis, 120 on 0-150)."""
    scale = abs(scale if scale is not None else value)
    if scale == 0 or scale >= 10:
        return f"{value:.0f}"
    decimals = max(0, 1 - math.floor(math.log10(scale)))
    text = f"{value:.{decimals}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def _legend(svg: Svg, x: float, y: float, series: list[str], labels: dict, colors: dict) -> None:
    for i, key in enumerate(series):
        yy = y + i * 20
        svg.rect(x, yy - 11, 13, 13, colors[key])
        svg.text(x + 19, yy, labels.get(key, key), size=12)


def stacked_bars(
    *,
    bars: list[Bar],
    series: list[str],
    title: str,
    y_label: str,
    series_labels: dict[str, str] | None = None,
    colors: dict[str, str] | None = None,
    y_max: float | None = None,
    value_suffix: str = "",
    width: int = 900,
    height: int = 420,
    subtitle: str = "",
) -> str:
    """Vertical stacked bars with a legend on the right (the paper's Fig. 9 shape). ``subtitle``
    (e.g. the key of short bar labels) goes under the title; a bar's ``title`` is its tooltip name."""
    series_labels = series_labels or {}
    colors = colors or {s: SEQUENCE_COLORS[i % len(SEQUENCE_COLORS)] for i, s in enumerate(series)}
    svg = Svg(width, height, title)
    left, right, top, bottom = 64, 215, 40, 70 if any(b.group for b in bars) else 50
    if subtitle:
        top += 16
        svg.text(left, 44, subtitle, size=12)
    plot_w, plot_h = width - left - right, height - top - bottom
    totals = [sum(b.segments.get(s, 0) for s in series) for b in bars]
    top_value = y_max if y_max is not None else _nice_max(max(totals, default=0))
    svg.text(left, 24, title, size=16, weight="600")
    for tick in _ticks(top_value):
        y = top + plot_h - plot_h * tick / top_value
        svg.line(left, y, left + plot_w, y)
        svg.text(left - 6, y + 4, _fmt(tick, top_value) + value_suffix, size=12, anchor="end")
    svg.text(16, top + plot_h / 2, y_label, size=13, anchor="middle", rotate=-90)
    slots = len(bars) + sum(1 for b in bars if b.gap_before) * 0.6
    slot_w = plot_w / max(slots, 1)
    bar_w = min(slot_w * 0.72, 70)
    x = left
    group_spans: dict[str, list[float]] = {}
    for bar, total in zip(bars, totals, strict=True):
        if bar.gap_before:
            x += slot_w * 0.6
        cx = x + slot_w / 2
        y = top + plot_h
        for key in series:
            value = bar.segments.get(key, 0)
            if value <= 0:
                continue
            h = plot_h * value / top_value
            tip = f"{bar.group + ' ' if bar.group else ''}{bar.title or bar.label}: "
            tip += f"{series_labels.get(key, key)} {value:.1f}{value_suffix}"
            svg.rect(cx - bar_w / 2, y - h, bar_w, h, colors[key], tip)
            if h >= 16 and bar_w >= 34:
                svg.text(
                    cx,
                    y - h / 2 + 4,
                    f"{value:.0f}",
                    size=11,
                    anchor="middle",
                    fill="#ffffff" if key not in ("color", "material") else TEXT,
                )
            y -= h
        svg.text(cx, top + plot_h + 18, bar.label, size=12 if slot_w > 80 else 10, anchor="middle")
        if bar.group:
            group_spans.setdefault(bar.group, []).append(cx)
        if y_max is None:
            svg.text(cx, y - 5, _fmt(total), size=11, anchor="middle")
        x += slot_w
    for group, centers in group_spans.items():
        svg.text(
            sum(centers) / len(centers),
            top + plot_h + 38,
            group,
            size=13,
            anchor="middle",
            weight="600",
        )
    svg.line(left, top + plot_h, left + plot_w, top + plot_h, stroke=TEXT)
    _legend(svg, width - right + 18, top + 14, list(reversed(series)), series_labels, colors)
    return svg.render()


def bar_chart(
    *,
    labels: list[str],
    values: list[float],
    title: str,
    x_label: str,
    y_label: str,
    color: str = "#0072B2",
    marker_at: float | None = None,
    marker_label: str = "",
    width: int = 900,
    height: int = 380,
) -> str:
    """Plain vertical bars (a histogram when labels are bins); optional dashed marker line at a
    fractional position along the x axis (0..1), e.g. the detector threshold."""
    svg = Svg(width, height, title)
    left, right, top, bottom = 64, 30, 40, 64
    plot_w, plot_h = width - left - right, height - top - bottom
    top_value = _nice_max(max(values, default=0))
    svg.text(left, 24, title, size=16, weight="600")
    for tick in _ticks(top_value):
        y = top + plot_h - plot_h * tick / top_value
        svg.line(left, y, left + plot_w, y)
        svg.text(left - 6, y + 4, _fmt(tick, top_value), size=12, anchor="end")
    svg.text(16, top + plot_h / 2, y_label, size=13, anchor="middle", rotate=-90)
    slot_w = plot_w / max(len(values), 1)
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        h = plot_h * value / top_value
        x = left + i * slot_w
        svg.rect(
            x + slot_w * 0.08, top + plot_h - h, slot_w * 0.84, h, color, f"{label}: {value:g}"
        )
        if value:
            svg.text(
                x + slot_w / 2,
                top + plot_h - h - 5,
                _fmt(value, top_value / 10),
                size=11,
                anchor="middle",
            )
        svg.text(x + slot_w / 2, top + plot_h + 18, label, size=11, anchor="middle")
    if marker_at is not None:
        mx = left + plot_w * marker_at
        svg.line(mx, top, mx, top + plot_h, stroke="#C62828", width=2, dash="6 4")
        svg.text(mx + 6, top + 12, marker_label, size=12, fill="#C62828")
    svg.line(left, top + plot_h, left + plot_w, top + plot_h, stroke=TEXT)
    svg.text(left + plot_w / 2, height - 14, x_label, size=13, anchor="middle")
    return svg.render()


def horizontal_stacked_bars(
    *,
    rows: list[tuple[str, dict[str, float]]],
    series: list[str],
    title: str,
    x_label: str,
    series_labels: dict[str, str] | None = None,
    colors: dict[str, str] | None = None,
    width: int = 900,
    row_height: int = 22,
) -> str:
    """Horizontal stacked bars, one row per label (the paper's Fig. 10: units per object concept,
    segments per layer)."""
    series_labels = series_labels or {}
    colors = colors or {s: SEQUENCE_COLORS[i % len(SEQUENCE_COLORS)] for i, s in enumerate(series)}
    left, right, top, bottom = 170, 170, 44, 50
    height = top + bottom + max(len(rows), 1) * row_height
    svg = Svg(width, height, title)
    plot_w = width - left - right
    plot_h = len(rows) * row_height
    totals = [sum(v.values()) for _, v in rows]
    top_value = _nice_max(max(totals, default=0))
    svg.text(16, 24, title, size=16, weight="600")
    for tick in _ticks(top_value):
        x = left + plot_w * tick / top_value
        svg.line(x, top, x, top + plot_h)
        svg.text(x, top + plot_h + 16, _fmt(tick, top_value), size=12, anchor="middle")
    for i, ((label, values), total) in enumerate(zip(rows, totals, strict=True)):
        y = top + i * row_height
        svg.text(left - 8, y + row_height * 0.68, label, size=12, anchor="end")
        x = left
        for key in series:
            value = values.get(key, 0)
            if value <= 0:
                continue
            w = plot_w * value / top_value
            svg.rect(
                x,
                y + 3,
                w,
                row_height - 6,
                colors[key],
                f"{label}, {series_labels.get(key, key)}: {value:g}",
            )
            x += w
        svg.text(x + 5, y + row_height * 0.68, _fmt(total), size=11)
    svg.text(left + plot_w / 2, height - 12, x_label, size=13, anchor="middle")
    _legend(svg, width - right + 24, top + 14, series, series_labels, colors)
    return svg.render()


def category_distribution_chart(*, rows: list[dict], title: str) -> str:
    """Fig. 9: per layer, percent of answers per category, stacked to 100%."""
    bars = [Bar(label=r["layer"], segments=r["category_percent"]) for r in rows]
    return _category_bars(bars, title=title, y_label="share of answers (%)", y_max=100,
                          value_suffix="%")  # fmt: skip


def comparison_chart(*, comparison: dict, title: str) -> str:
    """Two or more networks side by side: one stacked bar per network within each layer. Bars
    are lettered A, B, ... under the axis; the key under the title gives each network's whole
    name (names such as demo-places and demo-objects share their first word)."""
    letters = {name: _bar_letter(i) for i, name in enumerate(comparison["networks"])}
    bars = []
    for layer_index, layer in enumerate(comparison["layers"]):
        for net_index, (network, rows) in enumerate(comparison["networks"].items()):
            row = next(r for r in rows if r["layer"] == layer)
            bars.append(
                Bar(
                    label=letters[network],
                    title=network,
                    group=layer,
                    segments=row["category_percent"],
                    gap_before=layer_index > 0 and net_index == 0,
                )
            )
    key = " · ".join(f"{letter} = {name}" for name, letter in letters.items())
    return _category_bars(bars, title=title, y_label="share of answers (%)", y_max=100,
                          value_suffix="%", width=1000, subtitle=key)  # fmt: skip


def _bar_letter(index: int) -> str:
    """A, B, ..., Z, then A2, B2, ... (a comparison rarely has more than a few networks)."""
    return chr(ord("A") + index % 26) + (str(index // 26 + 1) if index >= 26 else "")


def detector_chart(*, rows: list[dict], title: str) -> str:
    """Detector units per layer, stacked by their consensus category."""
    bars = [Bar(label=r["layer"], segments=r["detectors_by_category"]) for r in rows]
    return _category_bars(bars, title=title, y_label="detector units")


def _category_bars(bars: list[Bar], **options) -> str:
    """Stacked bars whose segments are the six concept categories, in their usual colors."""
    return stacked_bars(
        bars=bars,
        series=list(CATEGORY_KEYS),
        series_labels=CATEGORY_LABELS,
        colors=CATEGORY_COLORS,
        **options,
    )


def concept_chart(*, data: dict, title: str) -> str:
    """Fig. 10: detector units per concept, segments per layer."""
    rows = [(r["concept"], r["counts"]) for r in data["rows"]]
    return horizontal_stacked_bars(
        rows=rows,
        series=data["layers"],
        title=title,
        x_label="detector units",
    )


def precision_chart(*, histogram: dict, title: str) -> str:
    """Histogram of unit precision over all chosen layers, with the detector threshold marked."""
    edges = histogram["edges"]
    counts = [sum(per[i] for per in histogram["layers"].values()) for i in range(len(edges) - 1)]
    labels = [f"{edges[i]:.1f}–{edges[i + 1]:.1f}" for i in range(len(edges) - 1)]
    return bar_chart(
        labels=labels,
        values=counts,
        title=title,
        x_label="unit precision (mean of the answers' precisions)",
        y_label="units",
        marker_at=histogram["threshold"],
        marker_label=f"detector threshold {histogram['threshold']:.2f}",
    )
