"""Server-side SVG scatter plot for the paper reports, in the style of ``annotate.labels.plots``
(same Svg helper, fonts, grid and Okabe-Ito colors; a title, axis labels and an accessible name)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

from annotate.labels.plots import GRID, TEXT, Svg, _fmt, _nice_max, _ticks

__all__ = ["scatter_plot"]

POINT = "#D55E00"
FIT = "#0072B2"


def scatter_plot(
    *,
    xs: Sequence[float],
    ys: Sequence[float],
    labels: Sequence[str],
    title: str,
    x_label: str,
    y_label: str,
    note: str = "",
    width: int = 560,
    height: int = 400,
    label_points: int = 10,
) -> str:
    """Points (x, y) with tooltips, the least-squares line, and the ``label_points`` highest-y
    points named beside them. ``note`` (e.g. the r values) goes under the title."""
    svg = Svg(width, height, title)
    left, right, top, bottom = 60, 70, 58, 52  # room on the right for point names
    plot_w, plot_h = width - left - right, height - top - bottom
    integer_x = all(float(x).is_integer() for x in xs) and max(xs, default=0) <= 10
    # counts get one step of room past the largest value, and integer ticks
    x_max = max(xs, default=0) + 1 if integer_x else _nice_max(max(xs, default=0))
    y_max = _nice_max(max(ys, default=0))
    svg.text(left, 22, title, size=15, weight="600")
    if note:
        svg.text(left, 42, note, size=12)
    px = lambda x: left + plot_w * x / x_max  # noqa: E731
    py = lambda y: top + plot_h - plot_h * y / y_max  # noqa: E731
    for tick in _ticks(y_max):
        svg.line(left, py(tick), left + plot_w, py(tick))
        svg.text(left - 6, py(tick) + 4, _fmt(tick, y_max), size=11, anchor="end")
    for tick in range(int(x_max) + 1) if integer_x else _ticks(x_max):
        svg.line(px(tick), top, px(tick), top + plot_h, stroke=GRID)
        svg.text(px(tick), top + plot_h + 16, _fmt(tick, x_max), size=11, anchor="middle")
    svg.line(left, top + plot_h, left + plot_w, top + plot_h, stroke=TEXT)
    svg.line(left, top, left, top + plot_h, stroke=TEXT)
    svg.text(left + plot_w / 2, height - 10, x_label, size=13, anchor="middle")
    svg.text(16, top + plot_h / 2, y_label, size=13, anchor="middle", rotate=-90)
    n = len(xs)
    if n >= 2:
        mx, my = sum(xs) / n, sum(ys) / n
        sxx = sum((x - mx) ** 2 for x in xs)
        if sxx > 0:
            slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx
            y0, y1 = my - slope * mx, my + slope * (x_max - mx)
            clip = lambda y: min(max(y, 0.0), y_max)  # noqa: E731
            svg.line(
                px(0), py(clip(y0)), px(x_max), py(clip(y1)), stroke=FIT, width=1.5, dash="5 4"
            )
    named = set(sorted(range(n), key=lambda i: (-ys[i], labels[i]))[:label_points])
    together: dict[tuple[float, float], list[str]] = {}  # points drawn on top of each other
    for i, (x, y, name) in enumerate(zip(xs, ys, labels, strict=True)):
        tip = escape(f"{name}: {x:g}, {y:g}")
        svg.parts.append(
            f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="4.5" fill="{POINT}" '
            f'fill-opacity="0.75" stroke="#ffffff" stroke-width="1"><title>{tip}</title></circle>'
        )
        if i in named and not math.isnan(y):
            together.setdefault((round(px(x)), round(py(y))), []).append(name)
    for (x, y), names in together.items():
        svg.text(x + 7, y + 4, ", ".join(names), size=11)
    return svg.render()
