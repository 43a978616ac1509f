"""Confidence intervals that hold at small counts, for rates and for the lift over a holdout.

A rate's interval is Wilson's score interval; the difference of two independent rates (treated
minus holdout) uses Newcombe's hybrid score interval, "method 10" of R. G. Newcombe, *Interval
estimation for the difference between independent proportions: comparison of eleven methods*,
Statistics in Medicine 17 (1998) 873–890. Unlike the z-test behind a "confidence" figure, both
stay inside [−1, 1], never collapse to a point at 0 or n successes, and keep close to their
nominal 95 % coverage with a few dozen contacts (tests/test_report.py checks the paper's examples).
"""

from __future__ import annotations

from dataclasses import dataclass
from math import sqrt

Z95 = 1.959963984540054  # the standard normal's 97.5th percentile


@dataclass(frozen=True)
class Interval:
    low: float
    high: float

    def __contains__(self, value: float) -> bool:
        return self.low <= value <= self.high


def wilson(successes: int, trials: int, z: float = Z95) -> Interval:
    """Wilson's score interval for `successes` out of `trials` (the whole [0, 1] for no trials).

    More successes than trials is taken as all of them: news of a message can arrive while the
    message itself is being handed over again, and a report must not fail for it.
    """
    if trials == 0:
        return Interval(0.0, 1.0)
    successes = min(successes, trials)
    p = successes / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z * sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / (1 + z * z / trials)
    low = 0.0 if successes == 0 else max(0.0, centre - half)  # exactly, not by a rounding error's width
    high = 1.0 if successes == trials else min(1.0, centre + half)
    return Interval(low, high)


def newcombe(x1: int, n1: int, x2: int, n2: int, z: float = Z95) -> Interval:
    """Newcombe's hybrid score interval for p1 − p2, p1 = x1/n1 and p2 = x2/n2 (method 10)."""
    if n1 == 0 or n2 == 0:
        return Interval(-1.0, 1.0)
    p1, p2 = x1 / n1, x2 / n2
    first, second = wilson(x1, n1, z), wilson(x2, n2, z)
    difference = p1 - p2
    low = difference - sqrt((p1 - first.low) ** 2 + (second.high - p2) ** 2)
    high = difference + sqrt((first.high - p1) ** 2 + (p2 - second.low) ** 2)
    return Interval(max(-1.0, low), min(1.0, high))
