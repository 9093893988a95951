"""Small inline SVG charts (lines with event markers, overlaid histograms) for the console and the demo summary.

Server-rendered SVG keeps the console free of a front-end build and of JavaScript, and the
demo's HTML summary a single self-contained file. Text goes through ``html.escape``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape

import numpy as np

# Colour-blind-safe palette (Okabe-Ito), in the order series are drawn.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9")
WIDTH, HEIGHT = 640, 260
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 48, 16, 28, 36


@dataclass(frozen=True, slots=True)
class Series:
    """One named line: x and y values of equal length."""

    name: str
    x: Sequence[float]
    y: Sequence[float]


@dataclass(frozen=True, slots=True)
class Marker:
    """A vertical line at ``x`` with a label (drift onset, alert, promotion)."""

    x: float
    label: str


class _Frame:
    """Maps data coordinates into the plotting area."""

    def __init__(self, x_range: tuple[float, float], y_range: tuple[float, float]) -> None:
        self.x0, self.x1 = x_range if x_range[1] > x_range[0] else (x_range[0], x_range[0] + 1)
        self.y0, self.y1 = y_range if y_range[1] > y_range[0] else (y_range[0], y_range[0] + 1)

    def x(self, value: float) -> float:
        span = WIDTH - MARGIN_LEFT - MARGIN_RIGHT
        return MARGIN_LEFT + (value - self.x0) / (self.x1 - self.x0) * span

    def y(self, value: float) -> float:
        span = HEIGHT - MARGIN_TOP - MARGIN_BOTTOM
        return HEIGHT - MARGIN_BOTTOM - (value - self.y0) / (self.y1 - self.y0) * span


def _axes(frame: _Frame, title: str, x_label: str, y_label: str) -> list[str]:
    parts = [
        f'<text x="{MARGIN_LEFT}" y="16" font-size="13" font-weight="bold">{escape(title)}</text>',
        f'<line x1="{MARGIN_LEFT}" y1="{HEIGHT - MARGIN_BOTTOM}" x2="{WIDTH - MARGIN_RIGHT}" '
        f'y2="{HEIGHT - MARGIN_BOTTOM}" stroke="#444"/>',
        f'<line x1="{MARGIN_LEFT}" y1="{MARGIN_TOP}" x2="{MARGIN_LEFT}" y2="{HEIGHT - MARGIN_BOTTOM}" stroke="#444"/>',
        f'<text x="{WIDTH / 2}" y="{HEIGHT - 6}" font-size="11" text-anchor="middle">{escape(x_label)}</text>',
        f'<text x="12" y="{HEIGHT / 2}" font-size="11" text-anchor="middle" '
        f'transform="rotate(-90 12 {HEIGHT / 2})">{escape(y_label)}</text>',
    ]
    for fraction in (0.0, 0.5, 1.0):
        y_value = frame.y0 + fraction * (frame.y1 - frame.y0)
        x_value = frame.x0 + fraction * (frame.x1 - frame.x0)
        parts.append(
            f'<text x="{MARGIN_LEFT - 4}" y="{frame.y(y_value) + 4:.1f}" font-size="10" '
            f'text-anchor="end">{_tick(y_value)}</text>'
        )
        parts.append(
            f'<text x="{frame.x(x_value):.1f}" y="{HEIGHT - MARGIN_BOTTOM + 13}" font-size="10" '
            f'text-anchor="middle">{_tick(x_value)}</text>'
        )
    return parts


def _tick(value: float) -> str:
    return f"{value:.0f}" if abs(value) >= 100 else f"{value:.2f}".rstrip("0").rstrip(".")


def _legend(names: Sequence[str]) -> list[str]:
    parts = []
    x = WIDTH - MARGIN_RIGHT - 130 * len(names)
    for index, name in enumerate(names):
        colour = PALETTE[index % len(PALETTE)]
        left = x + 130 * index
        parts.append(f'<rect x="{left}" y="6" width="10" height="10" fill="{colour}"/>')
        parts.append(f'<text x="{left + 14}" y="15" font-size="11">{escape(name)}</text>')
    return parts


def _svg(parts: list[str], description: str) -> str:
    body = "\n".join(parts)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" '
        f'role="img" aria-label="{escape(description)}" font-family="sans-serif">\n{body}\n</svg>'
    )


def line_chart(
    series: Sequence[Series],
    *,
    title: str,
    x_label: str,
    y_label: str,
    markers: Sequence[Marker] = (),
    y_range: tuple[float, float] | None = None,
) -> str:
    """Lines over a shared x axis, with labelled vertical markers."""
    xs = [float(v) for s in series for v in s.x] + [m.x for m in markers]
    ys = [float(v) for s in series for v in s.y if np.isfinite(v)]
    frame = _Frame((min(xs, default=0.0), max(xs, default=1.0)), y_range or (min(ys, default=0.0), max(ys, default=1.0)))
    parts = _axes(frame, title, x_label, y_label)
    # Labels stack downwards while markers are closer than a label is wide, so none print over another.
    label_width, last_x, row = 70.0, None, 0
    for marker in markers:
        x = frame.x(marker.x)
        row = row + 1 if last_x is not None and x - last_x < label_width else 0
        if last_x is None or abs(x - last_x) > 0.5:
            parts.append(
                f'<line x1="{x:.1f}" y1="{MARGIN_TOP}" x2="{x:.1f}" y2="{HEIGHT - MARGIN_BOTTOM}" '
                f'stroke="#888" stroke-dasharray="4 3"/>'
            )
        last_x = x if row == 0 else last_x
        parts.append(f'<text x="{x + 3:.1f}" y="{MARGIN_TOP + 12 + 12 * row}" font-size="10" fill="#333">'
                     f'{escape(marker.label)}</text>')
    for index, line in enumerate(series):
        points = " ".join(
            f"{frame.x(float(x)):.1f},{frame.y(float(y)):.1f}" for x, y in zip(line.x, line.y) if np.isfinite(y)
        )
        colour = PALETTE[index % len(PALETTE)]
        parts.append(f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2"/>')
    parts += _legend([s.name for s in series])
    return _svg(parts, title)


def histograms(
    samples: Mapping[str, Sequence[float]], *, title: str, x_label: str, bins: int = 20
) -> str:
    """Overlaid, normalised histograms of several samples on shared bins (e.g. confidence per version)."""
    finite = {name: np.asarray(values, dtype=float) for name, values in samples.items()}
    finite = {name: values[np.isfinite(values)] for name, values in finite.items()}
    pooled = np.concatenate([v for v in finite.values() if v.size] or [np.zeros(1)])
    edges = np.histogram_bin_edges(pooled, bins=bins)
    densities = {name: (np.histogram(v, bins=edges)[0] / max(v.size, 1)) for name, v in finite.items()}
    top = max((float(d.max()) for d in densities.values() if d.size), default=1.0) or 1.0
    frame = _Frame((float(edges[0]), float(edges[-1])), (0.0, top))
    parts = _axes(frame, title, x_label, "share of requests")
    for index, (name, density) in enumerate(densities.items()):
        colour = PALETTE[index % len(PALETTE)]
        for left, right, value in zip(edges[:-1], edges[1:], density):
            if value <= 0:
                continue
            x, width = frame.x(float(left)), frame.x(float(right)) - frame.x(float(left))
            y = frame.y(float(value))
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(width - 1, 0.5):.1f}" '
                f'height="{HEIGHT - MARGIN_BOTTOM - y:.1f}" fill="{colour}" fill-opacity="0.45"/>'
            )
    parts += _legend(list(densities))
    return _svg(parts, title)
