"""Server-side SVG bar charts of the statistics pages (the record's charts' style: no JavaScript,
`<title>`/`<desc>` for screen readers, presentation attributes only since the CSP forbids inline
styles). Each chart is paired on the page with a table of the same numbers.

Charts are drawn at their own width (WIDTH px, never shrunk: the page lets a narrower screen
scroll the chart sideways inside its own region), so that a 12 px text stays 12 px on a phone."""

import math

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

WIDTH, HEIGHT = 640, 240
LEFT, RIGHT, TOP, BOTTOM = 48, 12, 16, 44
INK, GRID = "#1b1b1f", "#d0d0d8"
COLOURS = ["#00557f", "#a4161a", "#1a6b32", "#6b3fa0", "#8a5a00"]
FONT = "DejaVu Sans"
FONT_SIZE = 12  # px, the smallest text of the charts: they are never drawn smaller than WIDTH
CHAR_WIDTH = 7.2  # mean advance of DejaVu Sans at 12 px, generous
LEGEND_ROW = 18


def _step(high: float) -> float:
    if high <= 0:
        return 1
    raw = high / 4
    magnitude = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 2.5, 5, 10):
        if raw <= factor * magnitude:
            return max(factor * magnitude, 1)
    return 10 * magnitude


def legend_positions(names: list[str]) -> list[tuple[int, int]]:
    """(x, row) of each legend entry: side by side, a new row when the next would leave the
    chart (the text's width estimated from its length at FONT_SIZE)."""
    positions, x, row = [], LEFT, 0
    for name in names:
        width = 14 + math.ceil(len(name) * CHAR_WIDTH) + 18
        if x > LEFT and x + width > WIDTH - RIGHT:
            x, row = LEFT, row + 1
        positions.append((x, row))
        x += width
    return positions


def label_step(labels: list[str], plot_w: float) -> int:
    """Label one period in `step`: as many as fit side by side at FONT_SIZE with a gap."""
    widest = max((len(label) for label in labels), default=1) * CHAR_WIDTH + 2 * CHAR_WIDTH
    fitting = max(1, math.floor(plot_w / widest))
    return max(1, math.ceil(len(labels) / fitting))


def bar_chart(chart_id: str, title: str, labels: list[str], series: list[tuple[str, list[float]]]) -> SafeString:
    """Grouped bars: one group per label (period), one bar per series."""
    values = [v for _name, line in series for v in line]
    high = max(values, default=0)
    step = _step(high)
    top = max(step * math.ceil(high / step), step)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    group_w = plot_w / max(len(labels), 1)
    bar_w = max(group_w * 0.8 / max(len(series), 1), 1)
    total = ", ".join(f"{name} : {int(sum(line))}" for name, line in series)
    desc = f"{len(labels)} période(s), de {labels[0]} à {labels[-1]}. Totaux — {total}." if labels else "Aucune donnée."
    legend = legend_positions([name for name, _line in series])
    height = HEIGHT + 4 + (LEGEND_ROW * max(row for _x, row in legend) if legend else 0)  # 4: descenders
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="stat-chart" viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" '
        f'height="{height}" role="img" aria-labelledby="{chart_id}-t {chart_id}-d" font-family="{FONT}" font-size="{FONT_SIZE}">',
        f'<title id="{chart_id}-t">{escape(title)}</title><desc id="{chart_id}-d">{escape(desc)}</desc>',
    ]
    grid, tick = [], 0.0
    while tick <= top + step / 1000:
        y = TOP + plot_h - tick / top * plot_h
        grid.append(f"M{LEFT} {y:.1f}H{WIDTH - RIGHT}")
        parts.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" fill="{INK}">{int(tick)}</text>')
        tick += step
    parts.append(f'<path d="{"".join(grid)}" stroke="{GRID}" stroke-width="1" fill="none"/>')
    for index, (_name, line) in enumerate(series):
        bars = []
        for i, value in enumerate(line):
            if value <= 0:
                continue
            x = LEFT + i * group_w + group_w * 0.1 + index * bar_w
            h = value / top * plot_h
            bars.append(f"M{x:.1f} {TOP + plot_h:.1f}h{bar_w:.1f}v{-h:.1f}h{-bar_w:.1f}z")
        if bars:
            parts.append(f'<path d="{"".join(bars)}" fill="{COLOURS[index % len(COLOURS)]}"/>')
    every = label_step(labels, plot_w)
    last = len(labels) - 1
    for i, label in enumerate(labels):
        # Every `every`-th label, and the last one (the one before it left out if it would touch).
        if (i % every == 0 and last - i >= every) or i == last:
            half = len(label) * CHAR_WIDTH / 2 + 2  # kept whole inside the chart
            x = min(max(LEFT + i * group_w + group_w / 2, half), WIDTH - half)
            parts.append(
                f'<text x="{x:.1f}" y="{HEIGHT - BOTTOM + 20}" text-anchor="middle" fill="{INK}">{escape(label)}</text>'
            )
    for index, ((name, _line), (x, row)) in enumerate(zip(series, legend, strict=True)):
        colour = COLOURS[index % len(COLOURS)]
        y = HEIGHT + row * LEGEND_ROW
        parts.append(f'<path d="M{x} {y - 13}h10v10h-10z" fill="{colour}"/>')
        parts.append(f'<text x="{x + 14}" y="{y - 3}" fill="{INK}">{escape(name)}</text>')
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 - every text above is escaped


def category_chart(chart_id: str, title: str, series_name: str, rows: list[tuple[str, float]]) -> SafeString:
    """Horizontal bars, one per category, its name written whole above its bar and its number
    at the bar's end: the names (sentences) need the chart's width, which a period never does."""
    high = max((value for _label, value in rows), default=0) or 1
    row_h, bar_h, top = 2 * FONT_SIZE + 22, 14, 8
    plot_w = WIDTH - LEFT - RIGHT - 8 * CHAR_WIDTH  # room for the number after the longest bar
    height = top + row_h * max(len(rows), 1)
    total = int(sum(value for _label, value in rows))
    desc = f"{len(rows)} motif(s). Total — {series_name} : {total}." if rows else "Aucune donnée."
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="stat-chart" viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" '
        f'height="{height}" role="img" aria-labelledby="{chart_id}-t {chart_id}-d" font-family="{FONT}" font-size="{FONT_SIZE}">',
        f'<title id="{chart_id}-t">{escape(title)}</title><desc id="{chart_id}-d">{escape(desc)}</desc>',
    ]
    if not rows:
        parts.append(f'<text x="{RIGHT}" y="{top + FONT_SIZE}" fill="{INK}">Aucune donnée sur la période.</text>')
    bars = []
    for i, (label, value) in enumerate(rows):
        y = top + i * row_h
        width = value / high * plot_w
        name = (
            label
            if len(label) * CHAR_WIDTH <= WIDTH - 2 * RIGHT
            else label[: int((WIDTH - 2 * RIGHT) / CHAR_WIDTH) - 1] + "…"
        )
        parts.append(f'<text x="{RIGHT}" y="{y + FONT_SIZE}" fill="{INK}">{escape(name)}</text>')
        if value > 0:
            bars.append(f"M{RIGHT} {y + FONT_SIZE + 6}h{width:.1f}v{bar_h}h{-width:.1f}z")
        parts.append(f'<text x="{RIGHT + width + 6:.1f}" y="{y + FONT_SIZE + 18}" fill="{INK}">{int(value)}</text>')
    if bars:
        parts.append(f'<path d="{"".join(bars)}" fill="{COLOURS[0]}"/>')
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 - every text above is escaped
