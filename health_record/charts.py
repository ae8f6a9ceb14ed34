"""Server-side SVG charts of the patient's measures over time (RULES.md §3, medical profile).

No JavaScript: one `<svg>` string per measure, with `<title>`/`<desc>` for screen readers and
presentation attributes only (the CSP forbids inline styles). Pages pair each chart with a
table of the same values as its text alternative; the PDF embeds the same SVG.
"""

import datetime
import math
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Canvas:
    """A chart's size in SVG units and its text size. Pages draw at about the width a phone
    gives a measure card (~310 px at 375 px), so the labels are read at about their size there;
    record.css keeps the drawing between 12 and 16 px of text on every screen. The PDF's compact
    canvas is printed half a page wide."""

    width: int
    height: int
    bottom: int
    ticks: int
    font_size: int
    compact: bool


PAGE = Canvas(width=320, height=210, bottom=44, ticks=4, font_size=13, compact=False)
PRINT = Canvas(width=400, height=150, bottom=12, ticks=3, font_size=12, compact=True)


class _Plot:
    """Where the values and dates of one measure row fall on a canvas."""

    def __init__(self, canvas: Canvas, dates: list[datetime.date], lines: list[list[float]]):
        values = [v for line in lines for v in line]
        low, high = min(values), max(values)
        if high == low:
            low, high = low - max(1.0, abs(low) * 0.1), high + max(1.0, abs(high) * 0.1)
        self.step = _nice_step(high - low, canvas.ticks)
        self.y_min = math.floor(low / self.step) * self.step
        self.y_max = math.ceil(high / self.step) * self.step
        self.width, self.height = canvas.width - LEFT - RIGHT, canvas.height - TOP - canvas.bottom
        self.dates = dates
        self.day_span = max((dates[-1] - dates[0]).days, 1)

    def x(self, i: int) -> float:
        if len(self.dates) == 1:
            return LEFT + self.width / 2
        return LEFT + (self.dates[i] - self.dates[0]).days / self.day_span * self.width

    def y(self, v: float) -> float:
        return TOP + self.height - (v - self.y_min) / (self.y_max - self.y_min) * self.height


def _y_axis(canvas: Canvas, plot: _Plot) -> list[str]:
    """Horizontal grid lines with their values, then the base line."""
    parts, grid, tick = [], [], plot.y_min
    while tick <= plot.y_max + plot.step / 1000:
        ty = plot.y(tick)
        grid.append(f"M{LEFT} {ty:.1f}H{canvas.width - RIGHT}")
        # Compact charts label the lowest and highest lines only (each label costs a text layout).
        if not canvas.compact or tick == plot.y_min or tick + plot.step > plot.y_max + plot.step / 1000:
            parts.append(f'<text x="{LEFT - 6}" y="{ty + 4:.1f}" text-anchor="end" fill="{INK}">{_label(tick)}</text>')
        tick += plot.step
    parts.append(f'<path d="{"".join(grid)}" stroke="{GRID}" stroke-width="1" fill="none"/>')
    base = TOP + plot.height
    parts.append(f'<path d="M{LEFT} {base}H{canvas.width - RIGHT}" stroke="{INK}" stroke-width="1"/>')
    return parts


def _date_labels(canvas: Canvas, plot: _Plot) -> list[str]:
    """The first and last dates, and the date nearest the middle when its label clears both
    (a dd/mm/yyyy label is about six text sizes wide). Compact charts leave the period to their
    caption: each SVG text costs a text layout."""
    last = len(plot.dates) - 1
    if canvas.compact:
        return []
    labels = {0: "middle"} if last == 0 else {0: "start", last: "end"}
    room = 6 * canvas.font_size
    middle = min(range(last + 1), key=lambda i: abs(plot.x(i) - (LEFT + plot.width / 2)))
    if plot.x(0) + room * 1.6 <= plot.x(middle) <= plot.x(last) - room * 1.6:
        labels[middle] = "middle"
    return [
        f'<text x="{plot.x(i):.1f}" y="{TOP + plot.height + 16}" text-anchor="{anchor}" fill="{INK}">'
        f"{plot.dates[i]:%d/%m/%Y}</text>"
        for i, anchor in sorted(labels.items())
    ]


def _series(plot: _Plot, lines: list[list[float]]) -> list[str]:
    """Each line with its markers; the second (diastolic) differs by shape and dashes, not colour
    alone."""
    parts = []
    styles = [(PRIMARY, "", _circle), (SECONDARY, ' stroke-dasharray="6 4"', _square)]
    for line, (colour, dash, marker) in zip(lines, styles, strict=False):
        if len(line) > 1:
            points = " ".join(f"{plot.x(i):.1f},{plot.y(v):.1f}" for i, v in enumerate(line))
            parts.append(
                f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2.5"{dash} '
                f'stroke-linejoin="round"/>'
            )
        markers = "".join(marker(plot.x(i), plot.y(v)) for i, v in enumerate(line))
        parts.append(f'<path d="{markers}" fill="{colour}"/>')
    return parts


def _legend(canvas: Canvas) -> list[str]:
    """Below the dates, from the left edge: both labels fit the phone-sized canvas."""
    ly = canvas.height - 8
    return [
        f'<path d="{_circle(12, ly - 4)}" fill="{PRIMARY}"/>',
        f'<text x="20" y="{ly}" fill="{INK}">systolique</text>',
        f'<path d="{_square(112, ly - 4)}" fill="{SECONDARY}"/>',
        f'<text x="120" y="{ly}" fill="{INK}">diastolique (tirets)</text>',
    ]


def _opening(canvas: Canvas, row: dict, id_prefix: str, dates: list[datetime.date]) -> list[str]:
    """The `<svg>` element with its title and description (what a screen reader reads)."""
    series, kind = row["series"], escape(row["kind"])
    title_id, desc_id = f"{id_prefix}-{kind}-title", f"{id_prefix}-{kind}-desc"
    label, unit = escape(row["label"]), escape(row["unit"])
    latest = series[-1]
    desc = (
        f"{len(series)} mesure{'s' if len(series) > 1 else ''} du {dates[0]:%d/%m/%Y} au {dates[-1]:%d/%m/%Y}. "
        f"Dernière valeur : {escape(latest['display'])} {unit} le "
        f"{datetime.date.fromisoformat(latest['date']):%d/%m/%Y}."
    )
    # The PDF has no use for ids or ARIA (and repeated ids warn); pages need them.
    aria = "" if canvas.compact else f' role="img" aria-labelledby="{title_id} {desc_id}"'
    title_attr = "" if canvas.compact else f' id="{title_id}"'
    desc_attr = "" if canvas.compact else f' id="{desc_id}"'
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="measure-chart" viewBox="0 0 {canvas.width} '
        f'{canvas.height}" width="{canvas.width}" height="{canvas.height}"{aria} font-family="{FONT}" '
        f'font-size="{canvas.font_size}">',
        f"<title{title_attr}>{label} ({unit}) au fil du temps</title>",
        f"<desc{desc_attr}>{desc}</desc>",
    ]


def measure_chart(row: dict, *, id_prefix: str = "chart", compact: bool = False) -> SafeString:
    """The chart of one measure row from `profile.latest_measures` (series oldest first).

    `compact` (the PDF): a wider, lower canvas with fewer labels, so that text stays legible when
    a chart is printed half a page wide, and renders faster. Few, merged shapes: WeasyPrint's
    cost grows with the number of SVG elements."""
    canvas = PRINT if compact else PAGE
    series = row["series"]
    dates = [datetime.date.fromisoformat(p["date"]) for p in series]
    first = [float(p["value"]) for p in series]
    second = [float(p["value2"]) for p in series if p.get("value2") is not None]
    lines = [first] + ([[float(p["value2"]) for p in series]] if len(second) == len(series) else [])
    plot = _Plot(canvas, dates, lines)
    parts = _opening(canvas, row, id_prefix, dates)
    parts += _y_axis(canvas, plot) + _date_labels(canvas, plot) + _series(plot, lines)
    if len(lines) == 2 and not compact:
        parts += _legend(canvas)
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 - every interpolated text is escaped above
