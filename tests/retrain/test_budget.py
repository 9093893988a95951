"""``--budget``: parsing with named errors, the Pareto front, the refusal's closest candidate, the plots."""

from __future__ import annotations

import pytest

from shiftwatch.console.pareto_plot import charts, front
from shiftwatch.errors import Invalid
from shiftwatch.retrain.budget import Budget, Measured, SearchResult, pareto_flags


def test_a_budget_reads_limits_provider_and_batch() -> None:
    assert Budget.parse("latency_ms=16, size_mb=4") == Budget(16.0, 4.0, "cpu", 1)
    assert Budget.parse("size_mb=0.5,provider=OpenVINO,batch=8") == Budget(None, 0.5, "openvino", 8)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("latency=16", "'latency=16' is not key=value with a key of latency_ms, size_mb, provider, batch"),
        ("provider=cpu", "names no limit"),
        ("latency_ms=fast", "could not convert string to float: 'fast'"),
        ("latency_ms=-1", "latency_ms must be a positive number, got '-1'"),
        ("size_mb=nan", "size_mb must be a positive number"),
        ("size_mb=4,provider=tpu", "provider 'tpu' is not one of cpu, openvino, tensorrt, cuda"),
        ("size_mb=4,batch=0", "batch must be 1-1024, got 0"),
    ],
)
def test_a_bad_budget_names_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(Invalid, match="--budget") as error:
        Budget.parse(text)
    assert message in error.value.message


def test_the_pareto_front_keeps_exactly_the_undominated_candidates() -> None:
    points = [(0.95, 10.0, 4.0), (0.94, 5.0, 1.0), (0.93, 6.0, 1.0), (0.95, 10.0, 4.0), (0.90, 2.0, 3.0), (0.96, 12.0, 5.0)]
    # (0.93, 6, 1) is beaten by (0.94, 5, 1); the two equal points do not dominate each other.
    assert pareto_flags(points) == [True, True, False, True, True, True]


def measured(recipe: str, accuracy: float, latency: float, size: float, budget: Budget) -> Measured:
    return Measured(recipe, (), accuracy, latency, size, budget.misses(latency, size))


def test_the_refusal_names_the_candidate_nearest_the_budget() -> None:
    budget = Budget(latency_ms=10.0, size_mb=1.0)
    found = SearchResult(budget, (measured("fp32", 0.97, 30.0, 4.0, budget), measured("int8", 0.96, 12.0, 1.1, budget)))
    assert found.refusal() == ("no candidate fits the budget latency_ms=10,size_mb=1,provider=cpu,batch=1: the closest, "
                               "'int8', measures 12.00 ms and 1.10 MB at accuracy 0.960 (12.00 ms > 10 ms; 1.10 MB > 1 MB)")


def test_the_plots_draw_every_recipe_the_budget_and_each_axis_own_front() -> None:
    budget = Budget(latency_ms=10.0, size_mb=2.0)
    rows = (measured("fp32", 0.97, 30.0, 4.0, budget), measured("int8", 0.96, 8.0, 1.1, budget),
            measured("prune 0.5 + int8", 0.93, 5.0, 0.4, budget), measured("distill 0.25 + int8", 0.90, 6.0, 0.2, budget))
    found = SearchResult(budget, rows, chosen="int8").as_dict()
    assert [r["recipe"] for r in front(found["candidates"], "latency_ms")] == ["prune 0.5 + int8", "int8", "fp32"]
    assert [r["recipe"] for r in front(found["candidates"], "size_mb")] == ["distill 0.25 + int8", "prune 0.5 + int8", "int8", "fp32"]
    latency, size = charts(found)
    for svg in (latency, size):
        assert svg.count("<circle") == 4 and "int8 (chosen)" in svg and ">fp32<" in svg
    assert "budget: 10 ms" in latency and "budget: 2 MB" in size
    assert charts({}) == []


def test_the_same_measurements_judged_under_another_budget_choose_without_running_again() -> None:
    budget = Budget(latency_ms=10.0, size_mb=1.0)
    found = SearchResult(budget, (measured("fp32", 0.97, 30.0, 4.0, budget), measured("int8", 0.96, 12.0, 1.1, budget)))
    looser = found.under(Budget(latency_ms=15.0, size_mb=2.0))
    assert looser.chosen == "int8" and [m.fits for m in looser.candidates] == [False, True]
    assert found.under(Budget(latency_ms=40.0, size_mb=5.0)).chosen == "fp32"  # the more accurate, once it fits
    assert found.under(Budget(size_mb=0.5)).chosen is None
