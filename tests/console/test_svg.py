"""The console's and demo's inline SVG charts: legends match what is drawn, event labels never overlap."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from itertools import pairwise

import numpy as np

from shiftwatch.console.svg import HEIGHT, MARGIN_TOP, MARKER_LABEL_GAP, Marker, Series, histograms, line_chart

NS = {"svg": "http://www.w3.org/2000/svg"}


def test_each_histogram_is_drawn_in_its_legend_colour() -> None:
    rng = np.random.default_rng(0)
    svg = ET.fromstring(histograms({"v1 production": rng.random(300), "v2 canary": rng.random(300) ** 2,
                                    "v2 shadow": rng.random(300) ** 0.5}, title="Confidence", x_label="c"))
    drawn = {shape.get("data-series"): (shape.get("stroke"), shape.get("fill"), shape.get("fill-opacity"))
             for shape in svg.iterfind("svg:polygon", NS)}
    swatches = [(rect.get("stroke"), rect.get("fill"), rect.get("fill-opacity")) for rect in svg.iterfind("svg:rect", NS)]
    names = [text.text for text in svg.iterfind("svg:text", NS)][-3:]
    assert len(drawn) == 3 and [drawn[name] for name in names] == swatches
    assert len({stroke for stroke, _, _ in swatches}) == 3  # three distinct colours


def test_event_labels_sit_above_the_plot_apart_from_each_other_with_a_key_below() -> None:
    x = list(range(0, 1000, 10))
    events = [Marker(100, "drift: contrast"), Marker(104, "alert opened"), Marker(108, "labeled"),
              Marker(600, "candidate v2"), Marker(900, "promoted v2")]
    svg = ET.fromstring(line_chart([Series("accuracy", x, [0.99] * len(x))], title="Accuracy", x_label="requests",
                                   y_label="accuracy", markers=events, y_range=(0.0, 1.0)))
    texts = list(svg.iterfind("svg:text", NS))
    numbers = [t for t in texts if t.get("font-weight") == "bold" and t.text and t.text[0].isdigit()]
    # Close markers share one label; every label is above the plotting area, where no line is drawn.
    assert [t.text for t in numbers] == ["1,2,3", "4", "5"]
    assert all(float(t.get("y")) < MARGIN_TOP for t in numbers)
    xs = [float(t.get("x")) for t in numbers]
    assert all(b - a >= MARKER_LABEL_GAP for a, b in pairwise(xs))
    # The key lists every event in words, one line each, below the axes.
    key = [t for t in texts if t.find("svg:tspan", NS) is not None]
    assert ["".join(t.itertext()).split(None, 1)[1] for t in key] == [m.label for m in events]
    key_ys = [float(t.get("y")) for t in key]
    assert min(key_ys) > HEIGHT - 1 and all(b - a >= 12 for a, b in pairwise(key_ys))
    assert float(svg.get("height")) >= max(key_ys)
