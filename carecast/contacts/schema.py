"""What a contact looks like when it comes in (CSV row or `PUT /v1/contacts/{id}`).

Validation and normalisation happen here, at the edge: phones become E.164,
emails their normalised form, zones must exist. Errors name the field and say
what would be accepted.
"""

from __future__ import annotations

from typing import Any

import phonenumbers
from croniter import croniter
from email_validator import EmailNotValidError, validate_email
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from carecast.campaign.durations import Duration
from carecast.campaign.patterns import CLOCK
from carecast.channels.base import CHANNELS
from carecast.policy.timezones import is_known_zone

# A contact id travels in workflow ids, search attributes and the Temporal UI, which must carry no personal
# data: so a new id has no '@' (an email address as an id) and no leading '+' (a phone number); numeric ids
# are fine. Ids stored before the rule may have an '@': they are still written to (opt-outs, preferences).
CONTACT_ID = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"
STORED_CONTACT_ID = r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$"
NOT_PERSONAL = (
    "contact ids may not be an email address or a phone number ('@' or a leading '+'): they travel in "
    "Temporal's workflow ids and UI, which carry no personal data; use your own customer id and put the "
    "address in `email` or `phone`"
)


def personal_id(value: object) -> object:
    """Refuses, with the rule, an id that is an email address or a phone number; other values pass on."""
    if isinstance(value, str) and ("@" in value or value.startswith("+")):
        raise ValueError(NOT_PERSONAL)
    return value


LIFECYCLE_STAGE = r"^[a-z][a-z0-9_]{0,63}$"
LOCALE = r"^[a-zA-Z]{2,3}([-_][a-zA-Z0-9]{2,8})*$"


# The `topic` of a consent record (or a kept opt-out) about all marketing at once.
ALL_MARKETING = "*"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class QuietHoursInput(Strict):
    start: str = Field(pattern=CLOCK)
    end: str = Field(pattern=CLOCK)


class FrequencyLimitInput(Strict):
    max: int = Field(ge=0, le=1000)
    per: Duration


class ConsentInput(Strict):
    email: bool | None = None
    sms: bool | None = None
    voice: bool | None = None


class PreferencesInput(Strict):
    """Every field is optional: what is left out stays as it is."""

    consent: ConsentInput | None = None
    topics: dict[str, bool] | None = None
    marketing: bool | None = Field(default=None, description="false: no marketing at all, whatever the topic")
    preferred_channels: list[str] | None = None
    quiet_hours: QuietHoursInput | None = None
    send_windows: list[str] | None = None
    frequency_limit: FrequencyLimitInput | None = None
    paused_until: AwareDatetime | None = None

    @field_validator("preferred_channels")
    @classmethod
    def known_channels(cls, channels: list[str] | None) -> list[str] | None:
        for channel in channels or []:
            if channel not in CHANNELS:
                raise ValueError(f"unknown channel {channel!r}; use {', '.join(CHANNELS)}")
        return channels

    @field_validator("send_windows")
    @classmethod
    def valid_cron(cls, windows: list[str] | None) -> list[str] | None:
        for window in windows or []:
            if not croniter.is_valid(window):
                raise ValueError(f"{window!r} is not a cron expression, e.g. '* 9-17 * * 1-5' (weekdays 9:00-17:59)")
        return windows


class ContactFields(Strict):
    """Everything about a contact but its id (which a URL or a CSV column gives)."""

    email: str | None = None
    phone: str | None = None
    timezone: str | None = None
    locale: str | None = Field(default=None, pattern=LOCALE)
    lifecycle_stage: str | None = Field(default=None, pattern=LIFECYCLE_STAGE)
    care_agent: str | None = Field(default=None, max_length=128)
    attributes: dict[str, Any] = Field(default_factory=dict)
    preferences: PreferencesInput | None = None

    @field_validator("email")
    @classmethod
    def normalised_email(cls, value: str | None) -> str | None:
        if not value:
            return None
        try:
            return validate_email(value, check_deliverability=False).normalized
        except EmailNotValidError as exc:
            raise ValueError(f"invalid email {value!r}: {exc}") from None

    @field_validator("phone")
    @classmethod
    def e164_phone(cls, value: str | None, info: ValidationInfo) -> str | None:
        if not value:
            return None
        region = (info.context or {}).get("default_region")
        try:
            number = phonenumbers.parse(value, region)
        except phonenumbers.NumberParseException as exc:
            hint = "" if region else " (write it as +<country code><number>, or pass a default region)"
            raise ValueError(f"invalid phone {value!r}: {exc._msg}{hint}") from None
        if not phonenumbers.is_valid_number(number):
            raise ValueError(f"invalid phone {value!r}: not a valid number for its region")
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)

    @field_validator("timezone")
    @classmethod
    def known_zone(cls, value: str | None) -> str | None:
        if value and not is_known_zone(value):
            raise ValueError(f"unknown time zone {value!r}; use an IANA name such as Europe/Paris")
        return value or None


class ContactInput(ContactFields):
    """A contact as carecast writes it; new ids coming in (API, import) also pass `personal_id`."""

    id: str = Field(pattern=STORED_CONTACT_ID)

    @classmethod
    def for_id(cls, contact_id: str, fields: ContactFields) -> ContactInput:
        """Joins an id to fields validated elsewhere, keeping which fields were given."""
        return cls.model_validate({"id": contact_id, **fields.model_dump(exclude_unset=True)})


def first_error(exc: Exception) -> str:
    """`field: message` of a pydantic ValidationError's first error, for one-line reports."""
    errors = getattr(exc, "errors", None)
    if not callable(errors):
        return str(exc)
    first = errors()[0]
    field = ".".join(str(p) for p in first["loc"])
    message = first["msg"].removeprefix("Value error, ")
    return f"{field}: {message}" if field else message
