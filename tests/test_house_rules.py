"""campaigns/policy.yaml: the shipped rules load; mistakes name the file and field."""

from datetime import time, timedelta
from pathlib import Path

import pytest

from carecast.campaign.documents import InvalidFile
from carecast.campaign.durations import format_duration, parse_duration
from carecast.campaign.house_rules import load_house_rules
from carecast.policy.model import QuietHours

ROOT = Path(__file__).resolve().parent.parent


def test_shipped_rules_load_with_the_global_ceiling_counting_care():
    rules = load_house_rules(ROOT / "campaigns")
    assert rules.quiet_hours == QuietHours(time(21), time(8))
    ceiling = next(c for c in rules.caps if c.name == "global_ceiling")
    assert (ceiling.max, ceiling.window, ceiling.categories) == (20, timedelta(days=30), {"care", "marketing"})


def test_no_policy_file_means_no_quiet_hours_and_no_caps(tmp_path):
    rules = load_house_rules(tmp_path)
    assert (rules.quiet_hours, rules.caps) == (None, ())


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "quiet_hours: {start: '25:00', end: '08:00'}",
            "1:22: '25:00' is not allowed here; write a time of day as HH:MM, e.g. 08:00",
        ),
        ("timezone: Mars/Olympus", "1:11: unknown time zone 'Mars/Olympus'; use an IANA name such as Europe/Paris"),
        (
            "frequency_caps:\n  - {name: daily, max: 1, per: 1 day}",
            "2:32: '1 day' is not a duration; write a number and a unit, e.g. 15m, 2h, 3d, 1w or 1h30m",
        ),
        (
            "quiet_hour: {start: '21:00', end: '08:00'}",
            "1:1: unknown key 'quiet_hour'; allowed here: timezone, quiet_hours, regional_quiet_hours, frequency_caps, "
            "global_ceiling, send_rates, reserved_for_care, email, guardrails",
        ),
        (
            "regional_quiet_hours: {Florida: {start: '20:00', end: '08:00'}}",
            "1:23: 'Florida' is not a region code; use a country (US) or a subdivision (US-FL)",
        ),
        (
            "quiet_hours: {start: '21:00', end: '08:00'}\n"
            "regional_quiet_hours: {US-FL: {start: '22:00', end: '08:00'}}",
            "2:23: US-FL (22:00-08:00) would let messages go in the house quiet hours (21:00-08:00); "
            "a region may only add quiet time",
        ),
        ("send_rates: {sms: 0}", "1:13: the sms rate must be above 0 messages per second"),
        ("send_rates: {fax: 10}", "1:19: Input should be 'email', 'sms' or 'voice'"),
        (
            "reserved_for_care: 100%",
            "1:20: write a share above 0% and below 100%: marketing and care each need some of the rate",
        ),
        ("reserved_for_care: 0.2", "1:20: 0.2 is not a percentage; write it with %, e.g. 4% or 0.5%"),
        (
            "guardrails: {complaint_rate: {at_least: 1%}}",
            "1:13: complaint_rate is a guardrail: give its ceiling, e.g. {at_most: 0.5%}",
        ),
    ],
)
def test_mistakes_name_the_file_line_and_column(tmp_path, text, message):
    (tmp_path / "policy.yaml").write_text(text)
    with pytest.raises(InvalidFile) as error:
        load_house_rules(tmp_path)
    assert str(error.value) == f"{tmp_path / 'policy.yaml'}:{message}"


def test_durations_read_and_print_as_marketers_write_them():
    assert parse_duration("1h30m") == timedelta(hours=1, minutes=30)
    assert parse_duration("2w") == timedelta(days=14)
    assert format_duration(timedelta(days=1, hours=2)) == "1d2h"
    with pytest.raises(ValueError, match="must be longer than zero"):
        parse_duration("0m")
