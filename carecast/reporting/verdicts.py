"""A KPI's verdict from its 95 % interval: met, missed, or not enough data yet.

A target is met when the whole interval lies on its good side and missed when the whole
interval lies on its bad side; while the interval straddles the target, the data cannot
tell yet. No fixed sample size is needed: a rate far from its target is judged sooner.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from carecast.campaign.kpis import Target
from carecast.reporting.intervals import Interval

MET, MISSED, NOT_YET = "met", "missed", "not enough data yet"


@dataclass(frozen=True)
class Verdict:
    kpi: str
    target: str  # as written: ≥ 4.00%
    value: float | None  # the measured rate (None: nothing to measure yet)
    interval: Interval
    verdict: str
    note: str = ""  # why not yet, when it is not the interval
    hits: int | None = None  # of a rate: how many, out of
    trials: int | None = None


def judge(
    kpi: str,
    target: Target,
    value: float | None,
    interval: Interval,
    hits: int | None = None,
    trials: int | None = None,
) -> Verdict:
    if target.at_least is not None:
        good, bad = interval.low >= target.at_least, interval.high < target.at_least
    else:
        good, bad = interval.high <= target.at_most, interval.low > target.at_most
    verdict = MET if good and value is not None else MISSED if bad and value is not None else NOT_YET
    return Verdict(kpi, target.describe(), value, interval, verdict, hits=hits, trials=trials)


@dataclass(frozen=True)
class Breach:
    """A guardrail found over its ceiling (carecast/reporting/guardrails.py), and what was done."""

    campaign_id: str
    campaign_version: int
    kpi: str
    value: float
    ceiling: float
    hits: int
    trials: int
    action: str  # paused or alerted
    found_at: datetime | None = None

    @property
    def reason(self) -> str:
        return (f"guardrail: {self.kpi} {self.value:.2%} over its ceiling {self.ceiling:.2%} "
                f"({self.hits} of {self.trials}) in version {self.campaign_version}")  # fmt: skip
