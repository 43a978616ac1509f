"""`campaigns/policy.yaml`: the house rules every message obeys, whatever the campaign."""

from __future__ import annotations

import re
from datetime import time
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from carecast.campaign.documents import InvalidFile, load_model
from carecast.campaign.durations import Duration
from carecast.campaign.kpis import HouseGuardrails, Percent
from carecast.campaign.patterns import CLOCK, RULE_NAME, Mailbox
from carecast.policy.model import CapRule, EmailIdentity, HouseRules, QuietHours
from carecast.policy.timezones import is_known_zone

POLICY_FILE = "policy.yaml"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class QuietHoursSpec(Strict):
    start: str = Field(pattern=CLOCK, description="local time HH:MM when quiet begins")
    end: str = Field(pattern=CLOCK, description="local time HH:MM when quiet ends")

    def to_policy(self) -> QuietHours:
        return QuietHours(time.fromisoformat(self.start), time.fromisoformat(self.end))


# A country (ISO 3166-1 alpha-2, "US") or a subdivision (ISO 3166-2, "US-FL").
REGION = r"^[A-Z]{2}(-[A-Z0-9]{1,3})?$"


class CapSpec(Strict):
    name: str = Field(pattern=RULE_NAME)
    max: int = Field(ge=0)
    per: Duration
    channel: str | None = Field(default=None, pattern=r"^(email|sms|voice)$")


class CeilingSpec(Strict):
    max: int = Field(ge=0)
    per: Duration


class EmailSpec(Strict):
    from_: Mailbox = Field(alias="from", description='"Name <address>" every email comes from unless its campaign says')
    reply_to: Mailbox | None = None
    postal_address: str | None = Field(
        default=None, min_length=5, description="shown in every marketing email's footer (CAN-SPAM)"
    )
    unsubscribe_mailto: Mailbox | None = Field(
        default=None, description="address of the mailto: List-Unsubscribe link beside the https one"
    )

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    def to_policy(self) -> EmailIdentity:
        return EmailIdentity(self.from_, self.reply_to, self.postal_address, self.unsubscribe_mailto)


class HouseRulesSpec(Strict):
    timezone: str = Field(default="UTC", description="zone for contacts with no zone and no phone region zone")
    quiet_hours: QuietHoursSpec | None = None
    regional_quiet_hours: dict[str, QuietHoursSpec] = Field(
        default_factory=dict,
        description="stricter quiet hours by a contact's `region` attribute (US, US-FL), added to the house's",
    )
    frequency_caps: list[CapSpec] = Field(default_factory=list, description="caps on marketing messages")
    global_ceiling: CeilingSpec | None = Field(
        default=None, description="all care and marketing messages count; marketing is held back"
    )
    send_rates: dict[Literal["email", "sms", "voice"], float] = Field(
        default_factory=dict, description="messages per second handed to each channel's provider, across all workers"
    )
    reserved_for_care: Percent = Field(
        default=0.2, description="of each send rate, the share kept for transactional and care messages, e.g. 20%"
    )
    email: EmailSpec | None = Field(default=None, description="sender, reply-to and postal address of emails")
    guardrails: HouseGuardrails = Field(
        default_factory=HouseGuardrails, description="every campaign's ceilings on unsubscribes, complaints, bounces"
    )

    @field_validator("send_rates")
    @classmethod
    def positive_rates(cls, rates: dict[str, float]) -> dict[str, float]:
        for channel, rate in rates.items():
            if rate <= 0:
                raise ValueError(f"the {channel} rate must be above 0 messages per second")
        return rates

    @field_validator("reserved_for_care")
    @classmethod
    def a_share_for_each(cls, share: float) -> float:
        if not 0 < share < 1:
            raise ValueError("write a share above 0% and below 100%: marketing and care each need some of the rate")
        return share

    @field_validator("regional_quiet_hours")
    @classmethod
    def regions_only_add_quiet_time(
        cls, regions: dict[str, QuietHoursSpec], info: ValidationInfo
    ) -> dict[str, QuietHoursSpec]:
        house = info.data.get("quiet_hours")
        for region, spec in regions.items():
            if not re.fullmatch(REGION, region):
                raise ValueError(f"{region!r} is not a region code; use a country (US) or a subdivision (US-FL)")
            if house is not None and not spec.to_policy().covers(house.to_policy()):
                raise ValueError(
                    f"{region} ({spec.start}-{spec.end}) would let messages go in the house quiet hours "
                    f"({house.start}-{house.end}); a region may only add quiet time"
                )
        return regions

    @field_validator("timezone")
    @classmethod
    def known_zone(cls, value: str) -> str:
        if not is_known_zone(value):
            raise ValueError(f"unknown time zone {value!r}; use an IANA name such as Europe/Paris")
        return value

    def to_policy(self) -> HouseRules:
        caps = [CapRule(c.name, c.max, c.per, channel=c.channel) for c in self.frequency_caps]
        if self.global_ceiling is not None:
            caps.append(
                CapRule(
                    "global_ceiling",
                    self.global_ceiling.max,
                    self.global_ceiling.per,
                    categories=frozenset({"care", "marketing"}),
                )
            )
        return HouseRules(
            default_timezone=self.timezone,
            quiet_hours=self.quiet_hours.to_policy() if self.quiet_hours else None,
            regional_quiet_hours={region: spec.to_policy() for region, spec in self.regional_quiet_hours.items()},
            caps=tuple(caps),
            send_rates=dict(self.send_rates),
            reserved_for_care=self.reserved_for_care,
            email=self.email.to_policy() if self.email else EmailIdentity(),
        )


def load_house_rules(campaigns_dir: Path) -> HouseRules:
    """The rules in `<campaigns>/policy.yaml`; without the file, no quiet hours and no caps."""
    path = campaigns_dir / POLICY_FILE
    if not path.exists():
        return HouseRules()
    return load_model(path, HouseRulesSpec).to_policy()


def local_house_spec(campaigns_dir: Path) -> HouseRulesSpec:
    """`<campaigns>/policy.yaml` as reports read it before any deploy: the defaults when the file is missing or
    has a mistake (`carecast validate` names it; the deployed house rules are what count)."""
    path = campaigns_dir / POLICY_FILE
    try:
        return load_model(path, HouseRulesSpec) if path.exists() else HouseRulesSpec()
    except InvalidFile:
        return HouseRulesSpec()
