"""Shields-style flat badges (SVG) and the shields.io endpoint format, drawn
here so that no badge ever needs a third-party service to show a monitor.

Widths come from Verdana 11 px advance widths (what shields' badge-maker
measures with), so the text fits its box."""

from __future__ import annotations

from django.utils.html import escape

from monitors.choices import MonitorStatus

# Verdana at 11 px, ASCII 32-126 (badge-maker's table, rounded).
_WIDTHS = [
    3.87, 4.33, 5.05, 9.0, 6.99, 11.84, 7.99, 2.95, 4.99, 4.99, 6.99, 9.0, 4.0, 4.99, 4.0, 4.99,
    6.99, 6.99, 6.99, 6.99, 6.99, 6.99, 6.99, 6.99, 6.99, 6.99, 4.99, 4.99, 9.0, 9.0, 9.0, 5.99,
    11.0, 7.52, 7.54, 7.68, 8.48, 6.96, 6.32, 8.53, 8.27, 4.63, 5.0, 7.62, 6.12, 9.27, 8.23, 8.66,
    6.63, 8.66, 7.65, 7.52, 6.78, 8.05, 7.52, 10.88, 7.54, 6.77, 7.54, 4.99, 4.99, 4.99, 9.0, 6.99,
    6.99, 6.61, 6.85, 5.73, 6.85, 6.55, 3.87, 6.85, 6.96, 3.02, 3.79, 6.51, 3.02, 10.7, 6.96, 6.68,
    6.85, 6.85, 4.69, 5.73, 4.33, 6.96, 6.51, 8.97, 6.51, 6.51, 5.78, 6.98, 4.99, 6.98, 9.0,
]
WIDE = 11.0  # anything outside ASCII: the widest common advance, so it never overflows
PADDING = 5
LABEL_COLOR = "#555"
NO_DATA_COLOR = "#9f9f9f"
MAX_LABEL = 60


def text_width(text: str) -> float:
    return sum(_WIDTHS[ord(c) - 32] if 32 <= ord(c) <= 126 else WIDE for c in text)


def svg(label: str, message: str, color: str) -> str:
    label, message = label[:MAX_LABEL], message[:MAX_LABEL]
    left = round(text_width(label) + 2 * PADDING)
    right = round(text_width(message) + 2 * PADDING)
    width = left + right
    label_x, message_x = left / 2, left + right / 2
    label, message, color = escape(label), escape(message), escape(color)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="20" role="img" '
        f'aria-label="{label}: {message}"><title>{label}: {message}</title>'
        '<linearGradient id="s" x2="0" y2="100%"><stop offset="0" stop-color="#bbb" stop-opacity=".1"/>'
        '<stop offset="1" stop-opacity=".1"/></linearGradient>'
        f'<clipPath id="r"><rect width="{width}" height="20" rx="3" fill="#fff"/></clipPath>'
        f'<g clip-path="url(#r)"><rect width="{left}" height="20" fill="{LABEL_COLOR}"/>'
        f'<rect x="{left}" width="{right}" height="20" fill="{color}"/>'
        f'<rect width="{width}" height="20" fill="url(#s)"/></g>'
        '<g fill="#fff" text-anchor="middle" font-family="Verdana,Geneva,DejaVu Sans,sans-serif" font-size="11">'
        f'<text x="{label_x}" y="15" fill="#010101" fill-opacity=".3">{label}</text>'
        f'<text x="{label_x}" y="14">{label}</text>'
        f'<text x="{message_x}" y="15" fill="#010101" fill-opacity=".3">{message}</text>'
        f'<text x="{message_x}" y="14">{message}</text></g></svg>'
    )


def shields(label: str, message: str, color: str) -> dict:
    """The shields.io endpoint format (https://shields.io/badges/endpoint-badge)."""
    return {"schemaVersion": 1, "label": label[:MAX_LABEL], "message": message[:MAX_LABEL],
            "color": color.lstrip("#")}


def status_color(status: str) -> str:
    return MonitorStatus(status).color


def latency_text(ms: float | None) -> str:
    if ms is None:
        return "no data"
    return f"{ms:.0f} ms" if ms < 1000 else f"{ms / 1000:.2f} s"


def uptime_text(percent: float | None) -> str:
    if percent is None:
        return "no data"
    # Floored by rollups; shown to two decimals but never rounded up to 100.
    return "100%" if percent >= 100 else f"{int(percent * 100) / 100:.2f}%"
