"""Which time zone a contact lives in."""

from __future__ import annotations

from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from phonenumbers import timezone as phone_timezones

UNKNOWN_ZONE = "Etc/Unknown"


@lru_cache(maxsize=4096)
def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def is_known_zone(name: str) -> bool:
    try:
        zone(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


@lru_cache(maxsize=65536)
def zone_of_phone(phone: str) -> str | None:
    """The first time zone of an E.164 number's region (phonenumbers' data), if it has one."""
    try:
        number = phonenumbers.parse(phone)
    except phonenumbers.NumberParseException:
        return None
    zones = [z for z in phone_timezones.time_zones_for_number(number) if z != UNKNOWN_ZONE]
    return zones[0] if zones else None


def contact_zone(timezone: str | None, phone: str | None, default: str) -> ZoneInfo:
    """The contact's own zone, else their phone region's first zone, else the house default."""
    for candidate in (timezone, zone_of_phone(phone) if phone else None):
        if candidate and is_known_zone(candidate):
            return zone(candidate)
    return zone(default)
