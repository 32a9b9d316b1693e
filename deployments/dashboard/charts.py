"""Inline SVG bar charts rendered on the server: no JavaScript, no CDN."""

from __future__ import annotations

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe


def bar_chart(*, values: list[float | None], labels: list[str], title: str, color: str = "#1f6feb",
              secondary: list[float] | None = None, secondary_color: str = "#9a6700",
              fmt=lambda v: f"{v:g}", width: int = 720, height: int = 160) -> SafeString:
    """Bars per label (secondary values stacked on top); a tooltip per bar, an accessible title."""
    pad_left, pad_bottom, pad_top = 44, 20, 10
    plot_w, plot_h = width - pad_left - 6, height - pad_bottom - pad_top
    totals = [(v or 0) + ((secondary[i] or 0) if secondary else 0) for i, v in enumerate(values)]
    top = max(totals + [0]) or 1
    n = max(len(values), 1)
    slot = plot_w / n
    bar_w = max(1.0, slot * 0.75)
    parts = [
        f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" width="100%" '
        f'preserveAspectRatio="xMinYMin meet" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
        f'<line x1="{pad_left}" y1="{pad_top + plot_h}" x2="{width - 6}" y2="{pad_top + plot_h}" stroke="#dde2e7"/>',
        f'<text x="{pad_left - 4}" y="{pad_top + 8}" text-anchor="end" font-size="10" fill="#68717c">'
        f"{escape(fmt(top))}</text>",
        f'<text x="{pad_left - 4}" y="{pad_top + plot_h}" text-anchor="end" font-size="10" fill="#68717c">0</text>',
    ]
    for i, value in enumerate(values):
        x = pad_left + i * slot + (slot - bar_w) / 2
        base = pad_top + plot_h
        label = escape(labels[i]) if i < len(labels) else ""
        if value:
            h = plot_h * value / top
            parts.append(f'<rect x="{x:.1f}" y="{base - h:.1f}" width="{bar_w:.1f}" height="{h:.1f}" '
                         f'fill="{color}"><title>{label}: {escape(fmt(value))}</title></rect>')
            base -= h
        extra = secondary[i] if secondary else None
        if extra:
            h = plot_h * extra / top
            parts.append(f'<rect x="{x:.1f}" y="{base - h:.1f}" width="{bar_w:.1f}" height="{h:.1f}" '
                         f'fill="{secondary_color}"><title>{label}: {escape(fmt(extra))}</title></rect>')
    step = max(1, n // 8)
    for i in range(0, n, step):
        x = pad_left + i * slot + slot / 2
        parts.append(f'<text x="{x:.1f}" y="{height - 5}" text-anchor="middle" font-size="10" '
                     f'fill="#68717c">{escape(labels[i])}</text>')
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 - every interpolated text is escaped above
