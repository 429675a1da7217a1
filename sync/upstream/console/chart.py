"""A small bar chart of check-ins per day, drawn as inline SVG on the server: no script, no
library in the browser, and it prints as it shows."""

from __future__ import annotations

from html import escape

WIDTH, HEIGHT, BAR_GAP, LABEL_H = 280, 64, 2, 12


def per_day_svg(per_day: list[tuple[str, int]], title: str) -> str:
    """Bars oldest to newest, today's darker; each bar's tooltip gives its date and count."""
    highest = max((n for _, n in per_day), default=0)
    top = highest or 1
    bar_w = (WIDTH - BAR_GAP * (len(per_day) - 1)) / max(len(per_day), 1)
    plot_h = HEIGHT - LABEL_H
    parts = [f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
             f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(title)}"><title>{escape(title)}</title>']
    for i, (day, n) in enumerate(per_day):
        h = max(round(plot_h * n / top), 1 if n else 0)
        x = i * (bar_w + BAR_GAP)
        colour = "#0b5394" if i == len(per_day) - 1 else "#6fa8dc"
        parts.append(f'<rect x="{x:.1f}" y="{plot_h - h}" width="{bar_w:.1f}" height="{h}" fill="{colour}">'
                     f'<title>{escape(day)}: {n}</title></rect>')
    parts.append(f'<line x1="0" y1="{plot_h}.5" x2="{WIDTH}" y2="{plot_h}.5" stroke="#999"/>')
    if per_day:
        parts.append(f'<text x="0" y="{HEIGHT - 1}" font-size="10" fill="#555">{escape(per_day[0][0][5:])}</text>')
        parts.append(f'<text x="{WIDTH}" y="{HEIGHT - 1}" font-size="10" fill="#555" text-anchor="end">'
                     f'{escape(per_day[-1][0][5:])} · max {highest}</text>')
    parts.append("</svg>")
    return "".join(parts)
