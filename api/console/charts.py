"""Small SVG charts for the console's operations page, drawn on the server: no script, no external
resource, and nothing the console's Content-Security-Policy refuses (SVG presentation attributes,
not style attributes). Every chart carries a <title> and a text alternative for screen readers."""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup, escape

FAST = "#2f7d4f"
PERSON = "#c98a1b"
BAR = "#3d6fb6"
AXIS = "#6b7280"


def daily_claims(days: Sequence[tuple[str, int, int, int]], *, width: int = 960, height: int = 220) -> Markup:
    """Bars per day: claims assessed that took the fast lane (green) and that went to a person
    (amber), with claims filed as a line of dots. `days`: (iso day, filed, assessed, fast lane)."""
    left, bottom, top = 36, 28, 12
    plot_w, plot_h = width - left - 8, height - bottom - top
    peak = max([1] + [max(filed, assessed) for _, filed, assessed, _ in days])
    step = plot_w / max(1, len(days))
    bar_w = max(2.0, step * 0.7)
    parts = [
        f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        'xmlns="http://www.w3.org/2000/svg" aria-labelledby="daily-title daily-desc">',
        '<title id="daily-title">Claims per day, last 30 days</title>',
        f'<desc id="daily-desc">{escape(_describe(days))}</desc>',
        f'<line x1="{left}" y1="{top + plot_h}" x2="{width - 8}" y2="{top + plot_h}" stroke="{AXIS}"/>',
        f'<text x="{left - 6}" y="{top + 8}" text-anchor="end" font-size="11" fill="{AXIS}">{peak}</text>',
        f'<text x="{left - 6}" y="{top + plot_h}" text-anchor="end" font-size="11" fill="{AXIS}">0</text>',
    ]
    for i, (day, filed, assessed, fast) in enumerate(days):
        x = left + i * step + (step - bar_w) / 2
        person = assessed - fast
        h_fast = plot_h * fast / peak
        h_person = plot_h * person / peak
        y_fast = top + plot_h - h_fast
        parts.append(
            f'<rect x="{x:.1f}" y="{y_fast:.1f}" width="{bar_w:.1f}" height="{h_fast:.1f}" fill="{FAST}">'
            f"<title>{escape(day)}: {fast} fast lane</title></rect>"
        )
        parts.append(
            f'<rect x="{x:.1f}" y="{y_fast - h_person:.1f}" width="{bar_w:.1f}" height="{h_person:.1f}" '
            f'fill="{PERSON}"><title>{escape(day)}: {person} to a person</title></rect>'
        )
        if filed:
            cy = top + plot_h - plot_h * filed / peak
            parts.append(
                f'<circle cx="{x + bar_w / 2:.1f}" cy="{cy:.1f}" r="2.5" fill="#111827">'
                f"<title>{escape(day)}: {filed} filed</title></circle>"
            )
        if i % 5 == 0 or i == len(days) - 1:
            parts.append(
                f'<text x="{x + bar_w / 2:.1f}" y="{height - 10}" text-anchor="middle" font-size="11" '
                f'fill="{AXIS}">{escape(day[5:])}</text>'
            )
    parts.append("</svg>")
    return Markup("".join(parts))


def _describe(days: Sequence[tuple[str, int, int, int]]) -> str:
    filed = sum(d[1] for d in days)
    assessed = sum(d[2] for d in days)
    fast = sum(d[3] for d in days)
    return f"{filed} claims filed in {len(days)} days; {assessed} assessed, {fast} of them in the fast lane."


def bars(items: Sequence[tuple[str, int]], *, title: str, width: int = 420, row: int = 24) -> Markup:
    """Horizontal bars, one per (label, count), largest first as given."""
    label_w, pad = 190, 8
    height = max(row, row * len(items)) + pad
    peak = max([1] + [count for _, count in items])
    plot_w = width - label_w - 48
    ident = "bars-" + "".join(ch for ch in title.lower() if ch.isalnum())[:24]
    parts = [
        f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'xmlns="http://www.w3.org/2000/svg" aria-labelledby="{ident}">',
        f'<title id="{ident}">{escape(title)}: '
        + escape("; ".join(f"{label} {count}" for label, count in items) or "none")
        + "</title>",
    ]
    if not items:
        parts.append(f'<text x="0" y="{row - 8}" font-size="12" fill="{AXIS}">None in this period.</text>')
    for i, (label, count) in enumerate(items):
        y = i * row + pad / 2
        w = plot_w * count / peak
        parts.append(
            f'<text x="{label_w - 8}" y="{y + row * 0.65:.1f}" text-anchor="end" font-size="12" '
            f'fill="#111827">{escape(label)}</text>'
        )
        parts.append(f'<rect x="{label_w}" y="{y + 3:.1f}" width="{w:.1f}" height="{row - 8}" fill="{BAR}"/>')
        parts.append(
            f'<text x="{label_w + w + 6:.1f}" y="{y + row * 0.65:.1f}" font-size="12" fill="#111827">{count}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))
