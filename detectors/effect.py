"""The practical-effect rule: when a significant shift is drift, and how severe it is.

Why a rule at all: in a 50,000-sample window every trivial change is significant (Evidently
#50), so significance alone would page on noise. Why not a fixed effect threshold: a constant
fitted on one data set hid real shifts elsewhere (issue 14). The rule here depends only on the
window size: a significant shift is drift unless the window is bigger than ``effect_window``
AND the shift is smaller than what a window of ``effect_window`` samples could detect. Up to
that size significance alone decides, so the gate never bites where peers (alibi-detect,
Evidently) would say yes on the same data.

"What a smaller window could detect" is the test's own critical value scaled to that window:
a permutation test knows its critical value at this window (the permuted statistics' upper
quantile); under no change it shrinks like ``(1/n + 1/m) ** exponent`` (exponent 1 for the
degenerate quadratic statistics MMD^2 and LSDD, 1/2 for root-n statistics such as an AUC or a
KS distance), so scaling it by the ratio of that factor gives the critical value at
``effect_window``. A detector without a permutation null uses its ``min_effect_size`` (in its
effect unit) as that bound.

Severity carries the size: ``none`` (not significant), ``negligible`` (significant, below the
bound: reported, never paged), then ``low`` / ``medium`` / ``high`` by the effect against the
method's ``min_effect_size`` (below it, up to 4 times it, beyond).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from shiftwatch.detectors.base import DriftResult

# The window size people reason about: shifts a 1,000-sample window can see are worth a page.
EFFECT_WINDOW = 1000
# Effect of 4x the method's "worth a look" size and beyond: clearly visible, high severity.
HIGH_EFFECT_FACTOR = 4.0
SEVERITIES = ("none", "negligible", "low", "medium", "high")


@dataclass(frozen=True, slots=True)
class Verdict:
    """Significant at alpha; drift (significant and not negligible for this window size); severity; a sentence."""

    significant: bool
    drift: bool
    severity: str
    note: str

    def fields(self) -> dict[str, Any]:
        return {"significant": self.significant, "drift": self.drift, "severity": self.severity, "note": self.note}


def window_ratio(n_reference: int, n_current: int, effect_window: int) -> float:
    """``(1/n + 1/m)`` at ``effect_window`` samples each over the same at this window: > 1 for bigger windows."""
    return (2.0 / max(effect_window, 1)) / (1.0 / max(n_reference, 1) + 1.0 / max(n_current, 1))


def critical_at_effect_window(critical: float, ratio: float, exponent: float) -> float:
    """The test's critical value at ``effect_window`` from the one at this window (its null spread scales)."""
    return critical * ratio**exponent


def severity_of(effect: float, min_effect: float) -> str:
    if effect < min_effect:
        return "low"
    return "high" if effect >= HIGH_EFFECT_FACTOR * min_effect else "medium"


def judge(
    *,
    p_value: float | None,
    alpha: float,
    effect: float,
    min_effect: float,
    n_reference: int,
    n_current: int,
    effect_window: int = EFFECT_WINDOW,
    statistic: float | None = None,
    critical: float | None = None,
    exponent: float = 1.0,
) -> Verdict:
    """Apply the rule of this module; ``critical`` is the statistic's alpha-level critical value at this window."""
    significant = p_value is not None and p_value <= alpha
    if not significant:
        return Verdict(False, False, "none", "")
    ratio = window_ratio(n_reference, n_current, effect_window)
    if ratio <= 1.0:
        negligible = False
    elif critical is not None and statistic is not None:
        negligible = statistic < critical_at_effect_window(critical, ratio, exponent)
    else:
        negligible = effect < min_effect
    if negligible:
        note = (
            f"significant (p = {p_value:.3g}) but negligible: a window of {effect_window} samples could not detect "
            f"a shift this small (effect {effect:.3g}); not drift at this window size"
        )
        return Verdict(True, False, "negligible", note)
    return Verdict(True, True, severity_of(effect, min_effect), "")


def with_min_effect(result: DriftResult, min_effect: float | None) -> DriftResult:
    """A result under an explicit practical threshold a person set (CLI ``--min-effect``, a config's ``min_effect``)."""
    if min_effect is None or not result.drift or result.effect_size >= min_effect:
        return result
    note = f"significant but below the configured practical threshold ({result.effect_size:.3g} < {min_effect:g} {result.effect_unit})"
    return replace(result, drift=False, severity="negligible", note=note)


def verdict_of(result: DriftResult, decision: bool) -> dict[str, Any]:
    """What a stored run says about its verdict: significant, drift after Holm (the page decision), severity, note."""
    return {"significant": bool(result.significant), "drift": decision, "severity": result.severity, "note": result.note}


def bonferroni_combined(method: str, alpha: float, results: list[DriftResult]) -> DriftResult:
    """Parts tested at alpha / k each, as one result: p = min(1, k min p), drift when a part is, the largest severity."""
    best = min(results, key=lambda r: r.p_value if r.p_value is not None else 1.0)
    p_value = min(1.0, len(results) * float(best.p_value or 1.0))
    return DriftResult(
        method=method,
        statistic=best.statistic,
        p_value=p_value,
        threshold=alpha,
        drift=any(r.drift for r in results),
        significant=p_value <= alpha,
        severity=max((r.severity for r in results), key=SEVERITIES.index),
        note="; ".join(f"{r.method}: {r.note}" for r in results if r.note),
        n_reference=best.n_reference,
        n_current=best.n_current,
        effect_size=best.effect_size,
        effect_unit=f"{best.method}: {best.effect_unit}",
        atypical=next((r.atypical for r in results if r.atypical), ()),  # the parts' own sample ranking (MMD's)
        evidence={  # the deciding part is the one named in effect_unit
            r.method: {"p_value": r.p_value, "statistic": r.statistic, "effect_size": r.effect_size, "drift": r.drift, **r.evidence}
            for r in results
        },
    )
