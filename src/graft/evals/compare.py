"""The regression gate: one suite on a baseline and a candidate model, compared.

``graft eval compare`` runs the suite twice on the same assistant, once per model, and
fails when the candidate's pass rate falls more than ``threshold`` below the baseline's
(``candidate < baseline - threshold``). Per case it names what the candidate fixed (failed
on the baseline, passes now) and what it broke (the reverse), so a reviewer sees which
cases moved, not only that the rate did.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from graft.evals.runner import SuiteRun

__all__ = ["Comparison", "compare_runs", "resolve_threshold"]

DEFAULT_THRESHOLD = 0.05
_EPSILON = 1e-9
"""Pass rates are ratios of small counts: 0.8 - 0.1 must not fail 0.7 by a rounding error."""


@dataclass(frozen=True, slots=True)
class Comparison:
    """Two runs of one suite, and the gate's decision."""

    baseline: SuiteRun
    candidate: SuiteRun
    threshold: float
    fixed: list[str]
    broken: list[str]

    @property
    def drop(self) -> float:
        """How far the candidate's pass rate is below the baseline's (negative: above)."""
        return self.baseline.pass_rate - self.candidate.pass_rate

    @property
    def regressed(self) -> bool:
        """The candidate's pass rate is below the baseline's by more than the threshold."""
        return self.candidate.pass_rate < self.baseline.pass_rate - self.threshold - _EPSILON

    def to_json(self) -> dict[str, Any]:
        """The comparison as plain JSON, both runs included."""
        return {
            "threshold": self.threshold,
            "drop": round(self.drop, 4),
            "regressed": self.regressed,
            "fixed": self.fixed,
            "broken": self.broken,
            "baseline": self.baseline.to_json(),
            "candidate": self.candidate.to_json(),
        }

    def summary(self) -> str:
        """A few lines for the terminal: both rates, the cases that moved, the decision."""
        base, cand = self.baseline, self.candidate
        lines = [
            f"baseline  {base.model}: {base.passed}/{len(base.results)} passed "
            f"({base.pass_rate:.1%})",
            f"candidate {cand.model}: {cand.passed}/{len(cand.results)} passed "
            f"({cand.pass_rate:.1%})",
        ]
        lines += [f"  fixed:  {case_id}" for case_id in self.fixed]
        lines += [f"  broken: {case_id}" for case_id in self.broken]
        if self.regressed:
            lines.append(
                f"REGRESSION: the pass rate dropped {self.drop:.1%}, more than the "
                f"threshold of {self.threshold:.1%}"
            )
        else:
            lines.append(
                f"ok: change {cand.pass_rate - base.pass_rate:+.1%} "
                f"(a drop of more than {self.threshold:.1%} fails)"
            )
        return "\n".join(lines)


def resolve_threshold(given: float | None, suite: float | None, settings: float | None) -> float:
    """The threshold: the command's, else the suite's, else the settings', else 0.05."""
    for value in (given, suite, settings):
        if value is not None:
            return value
    return DEFAULT_THRESHOLD


def compare_runs(baseline: SuiteRun, candidate: SuiteRun, threshold: float) -> Comparison:
    """Compare two runs of the same cases (matched by case id)."""
    before = {result.case.id: result.passed for result in baseline.results}
    fixed, broken = [], []
    for result in candidate.results:
        was = before.get(result.case.id)
        if was is False and result.passed:
            fixed.append(result.case.id)
        elif was is True and not result.passed:
            broken.append(result.case.id)
    return Comparison(baseline, candidate, threshold, fixed, broken)
