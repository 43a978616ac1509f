"""KPIs a campaign sets before launch, and the house's guardrail defaults (`policy.yaml`).

    kpis:
      conversion: {at_least: 4%}        # goal conversions among treated entries
      lift: {at_least: 1%}              # treated minus holdout conversion, in percentage points
      click_rate: {at_least: 2%}        # emails clicked per email sent (also open_rate)
      unsubscribe_rate: {at_most: 0.5%} # guardrails, per message sent
      complaint_rate: {at_most: 0.1%}
      bounce_rate: {at_most: 2%}

Rates are written as percentages (`0.5%`), never as bare numbers, so 0.5 and 50 % cannot be
confused. The guardrail rates a campaign leaves out come from `policy.yaml`'s `guardrails:`.
`carecast report` gives each KPI a verdict from its 95 % interval (carecast/reporting).
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BeforeValidator, Field, PlainSerializer, model_validator

from carecast.campaign.steps.base import Strict

_PERCENT = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*%\s*$")
GUARDRAILS = ("unsubscribe_rate", "complaint_rate", "bounce_rate")


def parse_percent(value: object) -> float:
    """`4%` → 0.04; a bare number is refused (is 0.5 half a percent or half of everyone?)."""
    found = _PERCENT.match(value) if isinstance(value, str) else None
    if found is None:
        raise ValueError(f"{value!r} is not a percentage; write it with %, e.g. 4% or 0.5%")
    if not -100 <= float(found[1]) <= 100:
        raise ValueError(f"{value!r} is out of range: a rate is 0% to 100%, a lift -100% to 100%")
    return float(found[1]) / 100


def format_percent(value: float) -> str:
    return f"{value * 100:.10g}%"


# Stored (deploy) as written: `0.5%`.
Percent = Annotated[float, BeforeValidator(parse_percent), PlainSerializer(format_percent, return_type=str)]


class Target(Strict):
    at_least: Percent | None = None
    at_most: Percent | None = None

    @model_validator(mode="after")
    def exactly_one(self) -> Target:
        if (self.at_least is None) == (self.at_most is None):
            raise ValueError("a KPI has at_least or at_most, e.g. {at_least: 4%}")
        return self

    def describe(self) -> str:
        return f"≥ {self.at_least:.2%}" if self.at_least is not None else f"≤ {self.at_most:.2%}"


class Guardrails(Strict):
    """The rates that, past their ceiling, say a campaign hurts: a complaint, an unsubscribe, a bounce."""

    unsubscribe_rate: Target | None = Field(default=None, description="unsubscribes per message sent")
    complaint_rate: Target | None = Field(default=None, description="spam complaints per message sent")
    bounce_rate: Target | None = Field(default=None, description="bounces per message sent")

    @model_validator(mode="after")
    def ceilings_only(self) -> Guardrails:
        for name in GUARDRAILS:
            target = getattr(self, name)
            if target is not None and target.at_most is None:
                raise ValueError(f"{name} is a guardrail: give its ceiling, e.g. {{at_most: 0.5%}}")
        return self


class HouseGuardrails(Guardrails):
    """`guardrails:` in policy.yaml: every campaign's ceilings unless it sets its own."""

    min_sample: int = Field(default=500, ge=1, description="messages sent before a guardrail is judged at all")


class Kpis(Guardrails):
    conversion: Target | None = Field(default=None, description="goal conversions among treated entries")
    lift: Target | None = Field(
        default=None, description="treated minus holdout conversion, in percentage points (may be negative)"
    )
    open_rate: Target | None = Field(default=None, description="emails opened by a person, per email sent")
    click_rate: Target | None = Field(default=None, description="emails clicked, per email sent")

    @model_validator(mode="after")
    def rates_are_not_negative(self) -> Kpis:
        for name in ("conversion", "open_rate", "click_rate", *GUARDRAILS):
            target = getattr(self, name)
            if target is not None and min(v for v in (target.at_least, target.at_most) if v is not None) < 0:
                raise ValueError(f"{name} is a rate, 0% to 100%: only a lift may be negative")
        return self
