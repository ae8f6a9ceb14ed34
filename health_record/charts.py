"""Server-side SVG charts of the patient's measures over time (RULES.md §3, medical profile).

No JavaScript: one `<svg>` string per measure, with `<title>`/`<desc>` for screen readers and
presentation attributes only (the CSP forbids inline styles). Pages pair each chart with a
table of the same values as its text alternative; the PDF embeds the same SVG.
"""

import datetime
import math
from decimal import Decimal

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from health_record.models import format_number

LEFT, RIGHT, TOP = 52, 16, 16
INK, GRID, PRIMARY, SECONDARY = "#1b1b1f", "#d0d0d8", "#00557f", "#a4161a"
FONT = "DejaVu Sans"


def _nice_step(span: float, ticks: int) -> float:
    raw = span / ticks if span > 0 else 1.0
    magnitude = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 2.5, 5, 10):
        if raw <= factor * magnitude:
            return factor * magnitude
    return 10 * magnitude


def _circle(cx: float, cy: float, r: float = 3.5) -> str:
    return f"M{cx - r:.1f} {cy:.1f}a{r} {r} 0 1 0 {2 * r} 0a{r} {r} 0 1 0 {-2 * r} 0z"


def _square(cx: float, cy: float, half: float = 3) -> str:
    return f"M{cx - half:.1f} {cy - half:.1f}h{2 * half}v{2 * half}h{-2 * half}z"


def _label(value: float) -> str:
    return format_number(Decimal(str(round(value, 2))))


def measure_chart(row: dict, *, id_prefix: str = "chart", compact: bool = False) -> SafeString:
    """The chart of one measure row from `profile.latest_measures` (series oldest first).

    `compact` (the PDF): a smaller canvas with fewer labels, so that text stays legible when a
    chart is printed half a page wide, and renders faster."""
    WIDTH, HEIGHT = (400, 150) if compact else (560, 220)
    BOTTOM = 40 if not compact else 12
    ticks = 3 if compact else 4
    series = row["series"]
    dates = [datetime.date.fromisoformat(p["date"]) for p in series]
    first = [float(p["value"]) for p in series]
    second = [float(p["value2"]) for p in series if p.get("value2") is not None]
    lines = [first] + ([[float(p["value2"]) for p in series]] if len(second) == len(series) else [])

    values = [v for line in lines for v in line]
    low, high = min(values), max(values)
    if high == low:
        low, high = low - max(1.0, abs(low) * 0.1), high + max(1.0, abs(high) * 0.1)
    step = _nice_step(high - low, ticks)
    y_min = math.floor(low / step) * step
    y_max = math.ceil(high / step) * step
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    d_min, d_max = dates[0], dates[-1]
    day_span = max((d_max - d_min).days, 1)

    def x(i: int) -> float:
        if len(dates) == 1:
            return LEFT + plot_w / 2
        return LEFT + (dates[i] - d_min).days / day_span * plot_w

    def y(v: float) -> float:
        return TOP + plot_h - (v - y_min) / (y_max - y_min) * plot_h

    kind = escape(row["kind"])
    title_id, desc_id = f"{id_prefix}-{kind}-title", f"{id_prefix}-{kind}-desc"
    label, unit = escape(row["label"]), escape(row["unit"])
    latest = series[-1]
    desc = (
        f"{len(series)} mesure{'s' if len(series) > 1 else ''} du {d_min:%d/%m/%Y} au {d_max:%d/%m/%Y}. "
        f"Dernière valeur : {escape(latest['display'])} {unit} le "
        f"{datetime.date.fromisoformat(latest['date']):%d/%m/%Y}."
    )
    # The PDF has no use for ids or ARIA (and repeated ids warn); pages need them.
    aria = "" if compact else f' role="img" aria-labelledby="{title_id} {desc_id}"'
    title_attr = "" if compact else f' id="{title_id}"'
    desc_attr = "" if compact else f' id="{desc_id}"'
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="measure-chart" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'width="{WIDTH}" height="{HEIGHT}"{aria} font-family="{FONT}" font-size="{12 if compact else 11}">',
        f"<title{title_attr}>{label} ({unit}) au fil du temps</title>",
        f"<desc{desc_attr}>{desc}</desc>",
    ]
    # Few, merged shapes: WeasyPrint's cost grows with the number of SVG elements.
    grid, tick = [], y_min
    while tick <= y_max + step / 1000:
        ty = y(tick)
        grid.append(f"M{LEFT} {ty:.1f}H{WIDTH - RIGHT}")
        # Compact charts label the lowest and highest lines only (each label costs a text layout).
        if not compact or tick == y_min or tick + step > y_max + step / 1000:
            parts.append(f'<text x="{LEFT - 6}" y="{ty + 4:.1f}" text-anchor="end" fill="{INK}">{_label(tick)}</text>')
        tick += step
    parts.append(f'<path d="{"".join(grid)}" stroke="{GRID}" stroke-width="1" fill="none"/>')
    base = TOP + plot_h
    parts.append(f'<path d="M{LEFT} {base}H{WIDTH - RIGHT}" stroke="{INK}" stroke-width="1"/>')
    # Date labels: first, last and (if room) the middle one.
    # Compact charts leave the period to their caption: each SVG text costs a text layout.
    if compact:
        label_indexes = []
    elif len(dates) > 2:
        label_indexes = sorted({0, len(dates) - 1, (len(dates) - 1) // 2})
    else:
        label_indexes = sorted({0, len(dates) - 1})
    for i in label_indexes:
        if len(dates) == 1:
            anchor = "middle"
        else:
            anchor = "start" if i == 0 else ("end" if i == len(dates) - 1 else "middle")
        parts.append(
            f'<text x="{x(i):.1f}" y="{base + 16}" text-anchor="{anchor}" fill="{INK}">{dates[i]:%d/%m/%Y}</text>'
        )
    styles = [(PRIMARY, "", _circle), (SECONDARY, ' stroke-dasharray="6 4"', _square)]
    for line, (colour, dash, marker) in zip(lines, styles, strict=False):
        if len(line) > 1:
            points = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(line))
            parts.append(
                f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2.5"{dash} '
                f'stroke-linejoin="round"/>'
            )
        markers = "".join(marker(x(i), y(v)) for i, v in enumerate(line))
        parts.append(f'<path d="{markers}" fill="{colour}"/>')
    if len(lines) == 2 and not compact:
        # A legend that does not rely on colour alone: marker shape and dash pattern differ.
        ly = HEIGHT - 8
        parts.append(f'<path d="{_circle(LEFT + 4, ly - 4)}" fill="{PRIMARY}"/>')
        parts.append(f'<text x="{LEFT + 12}" y="{ly}" fill="{INK}">systolique</text>')
        parts.append(f'<path d="{_square(LEFT + 104, ly - 4)}" fill="{SECONDARY}"/>')
        parts.append(f'<text x="{LEFT + 112}" y="{ly}" fill="{INK}">diastolique (tirets)</text>')
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 - every interpolated text is escaped above
