"""The alert page's accuracy over time: the estimate in its interval, and realized accuracy from real labels."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import timedelta

import pytest
from scipy.stats import binomtest
from sqlalchemy import select

from shiftwatch.db import utcnow
from shiftwatch.detectors.runs import run_due_detectors
from shiftwatch.detectors.tables import Alert, DriftRun
from shiftwatch.labeling.oracle import label_with_oracle
from shiftwatch.labeling.policy import Budget, select_for_labeling
from tests.support.drift_scenario import REGISTRY, add_config, log, pin_labeled_reference, records

NS = {"svg": "http://www.w3.org/2000/svg"}
REALIZED = {51: 100.0, 52: 0.0}  # the oracle agrees with every prediction of window 51, with none of window 52


@pytest.fixture
def labeled_windows(db, settings, digits_model):
    """Three drifted windows tested by meanshift and CBPE; the last two labeled by an oracle through the real queue."""
    t0 = utcnow() - timedelta(hours=3)
    pin_labeled_reference(db, digits_model.id, t0)
    add_config(db, digits_model.id, detector="meanshift")
    add_config(db, digits_model.id, detector="accuracy_drop", params={"method": "cbpe"})
    predicted: dict[str, int] = {}
    for step, seed in enumerate((50, 51, 52)):
        start = t0 + timedelta(hours=1, minutes=10 * step)
        batch = records(start, 200, shift=0.6, confidence=0.6, seed=seed)
        predicted |= {r.input_ref: r.predicted_class for r in batch}
        log(db, settings, batch)
        assert run_due_detectors(db, settings, start + timedelta(minutes=5), registry=REGISTRY).runs == 2
        if seed in REALIZED:  # 100 queued per window, a tenth of them the uniform random slice
            with db.session() as session:
                select_for_labeling(session, "digits", Budget.of(settings, "digits", 100), start=start,
                                    end=start + timedelta(minutes=5), seed=seed)

    def oracle(ref: str) -> int:
        seed = int(ref.removeprefix("inputs/").split("-")[0])
        return predicted[ref] if REALIZED.get(seed) != 0.0 else (predicted[ref] + 1) % 10

    with db.session() as session:
        assert label_with_oracle(session, "digits", oracle) > 0
        return session.scalars(select(Alert).where(Alert.detector == "meanshift")).one().id


def accuracy_svg(api, alert_id: int) -> ET.Element:
    page = api.get(f"/console/alerts/{alert_id}")
    assert page.status_code == 200, page.text
    figure = re.search(r'<figure id="accuracy-plot">(<svg.*?</svg>)', page.text, re.S)
    assert figure is not None, "the accuracy plot is missing"
    caption = re.search(r'<figcaption id="accuracy-caption">(.*?)</figcaption>', page.text, re.S)
    assert caption is not None and "CBPE" in caption.group(1) and "2 window(s)" in caption.group(1)
    return ET.fromstring(figure.group(1))


def test_realized_accuracy_is_drawn_from_the_labels_beside_the_estimate_and_its_interval(
    api, db, labeled_windows: int
) -> None:
    from shiftwatch.console import accuracy_plot

    with db.session() as session:
        alert = session.get(Alert, labeled_windows)
        runs = list(session.scalars(select(DriftRun).where(DriftRun.config_id == alert.config_id).order_by(DriftRun.tick)))
        history = accuracy_plot.history(session, alert.model_version_id, runs, runs[0].tick)
    assert history is not None and history.method.startswith("CBPE, label-free")
    # Window 50 has labels too (the alert queued its flagged samples), but none from the random slice.
    assert [p.realized for p in history.points] == [None, REALIZED[51], REALIZED[52]]
    assert all(p.n_labels >= accuracy_plot.MIN_REALIZED_LABELS for p in history.points[1:])
    assert all(p.low <= p.estimated <= p.high for p in history.points)
    # All right / all wrong on a handful of labels is an interval, not a point: the exact binomial one.
    right, wrong = history.points[1:]
    exact = binomtest(right.n_labels, right.n_labels).proportion_ci(method="exact")
    assert (right.realized_low, right.realized_high) == (pytest.approx(100 * exact.low), 100.0)
    assert right.realized_low < 75.0 and wrong.realized_low == 0.0 and wrong.realized_high > 25.0

    svg = accuracy_svg(api, labeled_windows)
    (estimated,) = svg.iterfind("svg:polyline[@data-series='estimated, %']", NS)
    assert len(estimated.get("points").split()) == 3
    assert len(list(svg.iterfind("svg:polygon[@data-band='estimated, %']", NS))) == 1  # the interval
    dots = [float(c.get("cy")) for c in svg.iterfind("svg:circle[@data-series='realized, %']", NS)]
    assert len(dots) == 2 and dots[0] < dots[1]  # 100 % is drawn above 0 %
    assert len(list(svg.iterfind("svg:line[@data-whisker='realized, %']", NS))) == 2  # each dot's interval
    legend = [t.text for t in svg.iterfind("svg:text", NS)]
    assert "estimated, %" in legend and "realized, %" in legend


@pytest.mark.parametrize("estimator", [True, False], ids=["cbpe", "no-estimator"])
def test_without_labels_the_plot_says_so_and_draws_no_realized_accuracy(api, db, settings, digits_model, estimator) -> None:
    t0 = utcnow() - timedelta(hours=3)
    pin_labeled_reference(db, digits_model.id, t0, with_labels=estimator)  # no labels: no accuracy estimate at all
    add_config(db, digits_model.id, detector="meanshift")
    if estimator:
        add_config(db, digits_model.id, detector="accuracy_drop", params={"method": "cbpe"})
    for step in range(2):
        start = t0 + timedelta(hours=1, minutes=10 * step)
        log(db, settings, records(start, 200, shift=0.6, confidence=0.6, seed=60 + step))
        run_due_detectors(db, settings, start + timedelta(minutes=5), registry=REGISTRY)
    with db.session() as session:
        alert_id = session.scalars(select(Alert).where(Alert.detector == "meanshift")).one().id
    page = api.get(f"/console/alerts/{alert_id}").text
    assert "no realized accuracy yet" in page
    svg = ET.fromstring(re.search(r'<figure id="accuracy-plot">(<svg.*?</svg>)', page, re.S).group(1))
    assert list(svg.iterfind("svg:circle", NS)) == []
    said = re.search(r'<p id="accuracy-estimate"><strong>(.*?)</strong>', page, re.S).group(1)
    (line,) = svg.iterfind("svg:polyline", NS)
    if estimator:  # the alert's harm is CBPE's drop, with its method and interval (issue 24)
        assert said.startswith("Estimated accuracy") and "95 % interval" in said and "CBPE, label-free" in said
        assert line.get("data-series") == "estimated, %"
    else:  # no accuracy estimator: the confidence drop is called that, in words and on the plot
        assert said.startswith("Mean confidence") and "no interval" in said and "Estimated accuracy" not in said
        assert line.get("data-series") == "mean confidence (not accuracy), %" and "which is not accuracy" in page


def test_the_alerts_labeled_accuracy_is_drawn_over_time_in_its_band_beside_the_estimate() -> None:
    from datetime import datetime

    from shiftwatch.console import accuracy_plot
    from shiftwatch.detectors import alerts
    from shiftwatch.detectors.harm import Harm

    t0 = datetime(2026, 1, 1, 12, 0)
    history = [alerts.harm_entry(Harm(points=10.0, source="accuracy_estimate", accuracy=0.8, accuracy_interval=(0.7, 0.9)), t0)]
    for minutes, (acc, low, high) in ((30, (0.72, 0.6, 0.82)), (90, (0.75, 0.69, 0.8))):  # labels arrive, the band narrows
        measured = Harm(points=20.0, source="labeled", accuracy=acc, accuracy_interval=(low, high))
        history.append(alerts.harm_entry(measured, t0 + timedelta(minutes=minutes)))
    labeled = accuracy_plot.labeled_points(history)
    assert [p.accuracy for p in labeled] == [pytest.approx(72.0), pytest.approx(75.0)]  # the label-free entry is not one
    points = [accuracy_plot.AccuracyPoint(t0 + timedelta(minutes=m), 80.0, 70.0, 90.0, None, 0) for m in (0, 60, 120)]
    estimated = accuracy_plot.AccuracyHistory("CBPE, label-free", points, labeled=labeled)
    svg = ET.fromstring(accuracy_plot.chart(estimated, t0, "hours", []))
    name = "labeled estimate (prediction-powered), %"
    (line,) = svg.iterfind(f"svg:polyline[@data-series='{name}']", NS)
    assert len(line.get("points").split()) == 2
    assert len(list(svg.iterfind(f"svg:polygon[@data-band='{name}']", NS))) == 1
    assert "updated 2 time(s)" in accuracy_plot.caption(estimated) and "now 75.0 %" in accuracy_plot.caption(estimated)
