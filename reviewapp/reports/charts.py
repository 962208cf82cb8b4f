"""Charts as SVG made on the server: no script, no remote asset, the same in HTML and PDF.

Colours are presentation attributes (not ``style=``), so the app's Content-Security-
Policy allows them in the browser preview.
"""

from __future__ import annotations

from markupsafe import Markup, escape

BAR = "#0b5394"
SECOND = "#5b9bd5"
INK = "#1b1f24"


def bars(
    rows: list[tuple[str, float]], maximum: float | None = None, unit: str = "", width: int = 640
) -> Markup:
    """Horizontal bars, one row per ``(label, value)``."""
    label_w, row_h, pad = 230, 22, 4
    top = max(maximum or 0, max((v for _, v in rows), default=0), 1)
    height = row_h * len(rows) + pad * 2
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img">'
    ]
    for i, (label, value) in enumerate(rows):
        y = pad + i * row_h
        length = (width - label_w - 70) * value / top
        parts.append(
            f'<text x="{label_w - 6}" y="{y + 15}" text-anchor="end" font-size="11" fill="{INK}">{escape(_clip(label))}</text>'
        )
        parts.append(
            f'<rect x="{label_w}" y="{y + 3}" width="{length:.1f}" height="{row_h - 7}" fill="{BAR}"/>'
        )
        parts.append(
            f'<text x="{label_w + length + 5:.1f}" y="{y + 15}" font-size="11" fill="{INK}">{escape(_number(value))}{escape(unit)}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def paired_bars(
    rows: list[tuple[str, float, float]], names: tuple[str, str], width: int = 640
) -> Markup:
    """Two bars per row (e.g. issues and good practices), with a legend."""
    label_w, row_h, pad, legend = 230, 26, 4, 20
    top = max([1] + [max(a, b) for _, a, b in rows])
    height = row_h * len(rows) + pad * 2 + legend
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img">'
    ]
    for j, (name, colour) in enumerate(zip(names, (BAR, SECOND), strict=True)):
        x = label_w + j * 170
        parts.append(f'<rect x="{x}" y="4" width="12" height="12" fill="{colour}"/>')
        parts.append(f'<text x="{x + 17}" y="14" font-size="11" fill="{INK}">{escape(name)}</text>')
    for i, (label, a, b) in enumerate(rows):
        y = legend + pad + i * row_h
        parts.append(
            f'<text x="{label_w - 6}" y="{y + 16}" text-anchor="end" font-size="11" fill="{INK}">{escape(_clip(label))}</text>'
        )
        for k, (value, colour) in enumerate(((a, BAR), (b, SECOND))):
            length = (width - label_w - 50) * value / top
            parts.append(
                f'<rect x="{label_w}" y="{y + 3 + k * 10}" width="{length:.1f}" height="9" fill="{colour}"/>'
            )
            parts.append(
                f'<text x="{label_w + length + 4:.1f}" y="{y + 11 + k * 10}" font-size="9" fill="{INK}">{value}</text>'
            )
    parts.append("</svg>")
    return Markup("".join(parts))


def _clip(label: str, limit: int = 38) -> str:
    return label if len(label) <= limit else label[: limit - 1] + "…"


def _number(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".") if isinstance(value, float) else str(value)
