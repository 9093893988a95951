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
# Faint enough that three overlapping fills still let each outline's colour read as the legend's.
HISTOGRAM_FILL_OPACITY = 0.12
BAND_FILL_OPACITY = 0.2


@dataclass(frozen=True, slots=True)
class Series:
    """One named line: x and y values of equal length, optionally in an interval band or as dots."""

    name: str
    x: Sequence[float]
    y: Sequence[float]
    low: Sequence[float] | None = None  # with ``high``: a translucent band in the line's colour (whiskers for dots)
    high: Sequence[float] | None = None
    dots: bool = False  # a dot per point and no joining line (sparse values, e.g. windows that have labels)
    labels: Sequence[str] | None = None  # with ``dots``: a name beside each dot (the recipes of a budget search)


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


def _legend(names: Sequence[str], swatch: str = 'fill="{colour}"') -> list[str]:
    """Coloured squares and names; ``swatch`` is the square's style, so it matches how the series are drawn."""
    parts = []
    x = WIDTH - MARGIN_RIGHT - 130 * len(names)
    for index, name in enumerate(names):
        colour = PALETTE[index % len(PALETTE)]
        left = x + 130 * index
        parts.append(f'<rect x="{left}" y="6" width="10" height="10" {swatch.format(colour=colour)}/>')
        parts.append(f'<text x="{left + 14}" y="15" font-size="11">{escape(name)}</text>')
    return parts


def _svg(parts: list[str], description: str, height: int = HEIGHT) -> str:
    body = "\n".join(parts)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}" '
        f'role="img" aria-label="{escape(description)}" font-family="sans-serif">\n{body}\n</svg>'
    )


# Marker numbers closer than this (pixels, plus half a merged label's width) share one label ("2,3"),
# so none prints over another.
MARKER_LABEL_GAP = 16.0
KEY_LINE_HEIGHT = 15


def _markers(frame: _Frame, markers: Sequence[Marker]) -> tuple[list[str], int]:
    """Dashed lines with numbers above the plot area (never over the data) and a numbered key below the axes.

    Returns the SVG parts and the extra height the key needs.
    """
    parts: list[str] = []
    groups: list[tuple[float, list[int]]] = []
    for number, marker in enumerate(markers, start=1):
        x = frame.x(marker.x)
        parts.append(f'<line x1="{x:.1f}" y1="{MARGIN_TOP}" x2="{x:.1f}" y2="{HEIGHT - MARGIN_BOTTOM}" '
                     f'stroke="#888" stroke-dasharray="4 3"/>')
        # A merged label grows ("1,2,3"): about 6 px per character at font-size 10, half of it right of centre.
        if groups and x - groups[-1][0] < MARKER_LABEL_GAP + 3 * len(",".join(map(str, groups[-1][1]))):
            groups[-1][1].append(number)
        else:
            groups.append((x, [number]))
    for x, numbers in groups:
        parts.append(f'<text x="{x:.1f}" y="{MARGIN_TOP - 3}" font-size="10" font-weight="bold" text-anchor="middle" '
                     f'fill="#333">{",".join(map(str, numbers))}</text>')
    for number, marker in enumerate(markers, start=1):
        y = HEIGHT + KEY_LINE_HEIGHT * (number - 1) + 4
        parts.append(f'<text x="{MARGIN_LEFT}" y="{y}" font-size="11" fill="#333">'
                     f'<tspan font-weight="bold">{number}</tspan>  {escape(marker.label)}</text>')
    return parts, KEY_LINE_HEIGHT * len(markers) + (6 if markers else 0)


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
    ys = [float(v) for s in series for values in (s.y, s.low or (), s.high or ()) for v in values if np.isfinite(v)]
    frame = _Frame((min(xs, default=0.0), max(xs, default=1.0)), y_range or (min(ys, default=0.0), max(ys, default=1.0)))
    parts = _axes(frame, title, x_label, y_label)
    marker_parts, key_height = _markers(frame, markers)
    parts += marker_parts
    for index, line in enumerate(series):
        colour = PALETTE[index % len(PALETTE)]
        name = escape(line.name)
        if line.low is not None and line.high is not None:
            parts += _whiskers(frame, line, colour) if line.dots else [_band(frame, line, colour)]
        finite = [(frame.x(float(x)), frame.y(float(y))) for x, y in zip(line.x, line.y) if np.isfinite(y)]
        if line.dots:
            parts += [f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.5" fill="{colour}" data-series="{name}"/>' for x, y in finite]
            named = [(frame.x(float(x)), frame.y(float(y)), text) for x, y, text in zip(line.x, line.y, line.labels or ())
                     if np.isfinite(y)]  # fmt: skip
            parts += [f'<text x="{x + 5:.1f}" y="{y - 4:.1f}" font-size="9" fill="#333">{escape(text)}</text>'
                      for x, y, text in named]  # fmt: skip
            continue
        points = " ".join(f"{x:.1f},{y:.1f}" for x, y in finite)
        parts.append(f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2" data-series="{name}"/>')
    parts += _legend([s.name for s in series])
    return _svg(parts, title, HEIGHT + key_height)


def _whiskers(frame: _Frame, line: Series, colour: str) -> list[str]:
    """The interval of each dot as a vertical bar (dots are sparse: a band between them would invent values)."""
    return [
        f'<line x1="{frame.x(float(x)):.1f}" x2="{frame.x(float(x)):.1f}" y1="{frame.y(float(hi)):.1f}" '
        f'y2="{frame.y(float(lo)):.1f}" stroke="{colour}" stroke-width="1.5" data-whisker="{escape(line.name)}"/>'
        for x, lo, hi in zip(line.x, line.low or (), line.high or ()) if np.isfinite(lo) and np.isfinite(hi)
    ]


def _band(frame: _Frame, line: Series, colour: str) -> str:
    """The interval around a line: its upper edge left to right, then its lower edge back."""
    kept = [(float(x), float(lo), float(hi)) for x, lo, hi in zip(line.x, line.low or (), line.high or ())
            if np.isfinite(lo) and np.isfinite(hi)]
    edge = [(frame.x(x), frame.y(hi)) for x, _, hi in kept] + [(frame.x(x), frame.y(lo)) for x, lo, _ in reversed(kept)]
    path = " ".join(f"{x:.1f},{y:.1f}" for x, y in edge)
    return (f'<polygon points="{path}" fill="{colour}" fill-opacity="{BAND_FILL_OPACITY}" stroke="none" '
            f'data-band="{escape(line.name)}"/>')


def histograms(
    samples: Mapping[str, Sequence[float] | np.ndarray], *, title: str, x_label: str, bins: int = 20
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
    # Each sample is an opaque outline over a faint fill: where bars overlap, the outlines keep the
    # legend's colours (translucent bars alone blend into colours the legend does not show).
    for index, (name, density) in enumerate(densities.items()):
        colour = PALETTE[index % len(PALETTE)]
        points = [(frame.x(float(edges[0])), frame.y(0.0))]
        for left, right, value in zip(edges[:-1], edges[1:], density):
            points += [(frame.x(float(left)), frame.y(float(value))), (frame.x(float(right)), frame.y(float(value)))]
        points.append((frame.x(float(edges[-1])), frame.y(0.0)))
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
        parts.append(f'<polygon points="{path}" fill="{colour}" fill-opacity="{HISTOGRAM_FILL_OPACITY}" '
                     f'stroke="{colour}" stroke-width="2" data-series="{escape(name)}"/>')
    swatch = f'fill="{{colour}}" fill-opacity="{HISTOGRAM_FILL_OPACITY}" stroke="{{colour}}" stroke-width="2"'
    parts += _legend(list(densities), swatch)
    return _svg(parts, title)
