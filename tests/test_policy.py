"""The policy, rule by rule, with the data that shows each rule."""

from datetime import UTC, datetime, time, timedelta

import pytest

from carecast.contacts.views import contact_view
from carecast.policy.decide import decide
from carecast.policy.decision import Defer, Send, Skip
from carecast.policy.local_time import earliest_allowed
from carecast.policy.model import (
    CapRule,
    ContactView,
    HouseRules,
    Message,
    PreferenceView,
    QuietHours,
    SentDelivery,
)
from carecast.policy.timezones import contact_zone, zone
from carecast.store.models import Contact

PARIS = "Europe/Paris"
NIGHT = QuietHours(time(21, 0), time(8, 0))
HOUSE = HouseRules(default_timezone="America/New_York", quiet_hours=NIGHT)
ADA = ContactView("c-1", email="ada@example.com", phone="+33612345678", timezone=PARIS)
SMS_OK = PreferenceView(consent={"email": True, "sms": True})
DEFAULTS = PreferenceView()


def utc(*args):
    return datetime(*args, tzinfo=UTC)


NOON_PARIS = utc(2026, 6, 10, 10, 0)  # 12:00 CEST
NIGHT_PARIS = utc(2026, 6, 10, 22, 0)  # 00:00 CEST


def marketing(**overrides):
    return Message(**{"category": "marketing", "channels": ("email",), "topic": "offers", **overrides})


def run(message, now=NOON_PARIS, preferences=DEFAULTS, recent=(), rules=HOUSE, contact=ADA, suppressed=()):
    return decide(message, contact, preferences, set(suppressed), list(recent), rules, now)


def sent(at, category="marketing", channel="email"):
    return SentDelivery(at=at, category=category, channel=channel)


# consent, suppression, topics


def test_sends_in_the_afternoon_on_the_only_channel():
    assert run(marketing()) == Send("email", "ada@example.com")


def test_no_channel_left_is_a_skip_with_the_reason():
    assert run(marketing(channels=("sms",))) == Skip("no_consent")
    assert run(marketing(), suppressed={("email", "ada@example.com")}) == Skip("suppressed")
    assert run(marketing(), contact=ContactView("c-2", timezone=PARIS)) == Skip("no_address")


def test_topic_opt_out_skips_marketing_and_care_but_not_transactional():
    opted_out = PreferenceView(topics={"offers": False})
    assert run(marketing(), preferences=opted_out) == Skip("topic_unsubscribed")
    assert run(marketing(category="care"), preferences=opted_out) == Skip("topic_unsubscribed")
    assert run(marketing(category="transactional"), preferences=opted_out) == Send("email", "ada@example.com")


def test_unsubscribed_from_all_marketing_skips_every_marketing_topic_but_not_care():
    left = PreferenceView(marketing=False)
    assert run(marketing(topic="a_topic_added_later"), preferences=left) == Skip("marketing_unsubscribed")
    assert run(marketing(category="care"), preferences=left) == Send("email", "ada@example.com")


def test_a_topic_never_mentioned_counts_as_subscribed():
    assert run(marketing(topic="news"), preferences=PreferenceView(topics={"offers": False})) == Send(
        "email", "ada@example.com"
    )


# quiet hours and send windows


def test_marketing_at_night_is_deferred_to_the_end_of_quiet_hours_local_time():
    assert run(marketing(), now=NIGHT_PARIS) == Defer(utc(2026, 6, 11, 6, 0), "quiet_hours")


def test_care_at_night_is_deferred_too():
    assert run(marketing(category="care"), now=NIGHT_PARIS) == Defer(utc(2026, 6, 11, 6, 0), "quiet_hours")


def test_transactional_email_ignores_quiet_hours():
    assert run(marketing(category="transactional"), now=NIGHT_PARIS) == Send("email", "ada@example.com")


def test_transactional_sms_waits_for_morning_unless_urgent():
    sms = marketing(category="transactional", channels=("sms",))
    assert run(sms, now=NIGHT_PARIS, preferences=SMS_OK) == Defer(utc(2026, 6, 11, 6, 0), "quiet_hours")
    urgent = marketing(category="transactional", channels=("sms",), urgent=True)
    assert run(urgent, now=NIGHT_PARIS, preferences=SMS_OK) == Send("sms", "+33612345678")


def test_contact_quiet_hours_tighten_the_house_ones():
    evenings_off = PreferenceView(quiet_hours=QuietHours(time(18, 0), time(10, 0)))
    at_nine_am = utc(2026, 6, 10, 7, 0)
    assert run(marketing(), now=at_nine_am, preferences=evenings_off) == Defer(utc(2026, 6, 10, 8, 0), "quiet_hours")


REGIONAL = HouseRules(default_timezone="America/New_York", quiet_hours=NIGHT,
                      regional_quiet_hours={"US-FL": QuietHours(time(20, 0), time(8, 0))})  # fmt: skip
MIAMI = "America/New_York"
AT_20_30_MIAMI = utc(2026, 6, 10, 0, 30)  # 20:30 EDT on June 9th


@pytest.mark.parametrize(
    ("region", "outcome"),
    [
        ("US-FL", Defer(utc(2026, 6, 10, 12, 0), "quiet_hours")),  # Florida: quiet from 20:00, so 08:00 EDT
        ("us-fl ", Defer(utc(2026, 6, 10, 12, 0), "quiet_hours")),  # written any way in the attribute
        ("US-NY", Send("sms", "+13055550100")),  # the house's 21:00 still lets it go
        (None, Send("sms", "+13055550100")),
    ],
)
def test_a_regions_stricter_quiet_hours_add_to_the_house_ones(region, outcome):
    stored = Contact(id="c-fl", phone="+13055550100", timezone=MIAMI, attributes={"region": region} if region else {})
    sms = marketing(channels=("sms",))
    assert decide(sms, contact_view(stored), SMS_OK, set(), [], REGIONAL, AT_20_30_MIAMI) == outcome


def test_a_countrys_quiet_hours_hold_for_its_subdivisions():
    rules = HouseRules(quiet_hours=NIGHT, regional_quiet_hours={"US": QuietHours(time(20, 0), time(8, 0))})
    assert rules.quiet_hours_for("US-FL") == (NIGHT, QuietHours(time(20, 0), time(8, 0)))
    assert rules.quiet_hours_for("FR") == (NIGHT,)


def test_contact_quiet_hours_cannot_loosen_the_house_ones():
    always_on = PreferenceView(quiet_hours=QuietHours(time(3, 0), time(4, 0)))
    assert run(marketing(), now=NIGHT_PARIS, preferences=always_on) == Defer(utc(2026, 6, 11, 6, 0), "quiet_hours")


def test_send_window_defers_to_its_next_minute():
    weekday_mornings = PreferenceView(send_windows=("* 9-11 * * 1-5",))
    # Wednesday 12:00 Paris -> Thursday 09:00 Paris
    assert run(marketing(), preferences=weekday_mornings) == Defer(utc(2026, 6, 11, 7, 0), "send_window")


def test_zone_comes_from_the_contact_then_the_phone_then_the_house():
    assert contact_zone("Asia/Tokyo", "+33612345678", "UTC") == zone("Asia/Tokyo")
    assert contact_zone(None, "+33612345678", "UTC") == zone(PARIS)
    assert contact_zone(None, None, "America/New_York") == zone("America/New_York")
    assert contact_zone("Not/AZone", None, "UTC") == zone("UTC")


# DST: quiet hours ending inside a gap or a fold


def test_quiet_hours_ending_in_a_spring_forward_gap_end_when_the_clock_jumps():
    ends_in_gap = QuietHours(time(1, 0), time(2, 30))  # 02:00-03:00 does not exist on 29 March in Paris
    tz = zone(PARIS)
    allowed, reason = earliest_allowed(utc(2026, 3, 29, 0, 15), tz, [ends_in_gap], [])
    assert (allowed, reason) == (utc(2026, 3, 29, 1, 0), "quiet_hours")  # 03:00 CEST, the first minute after the gap
    assert allowed.astimezone(tz).strftime("%H:%M %Z") == "03:00 CEST"


def test_quiet_hours_ending_in_an_autumn_fold_end_at_the_first_occurrence():
    ends_in_fold = QuietHours(time(1, 0), time(2, 30))  # 02:00-03:00 happens twice on 25 October in Paris
    tz = zone(PARIS)
    allowed, _ = earliest_allowed(utc(2026, 10, 24, 23, 15), tz, [ends_in_fold], [])
    assert allowed == utc(2026, 10, 25, 0, 30)  # 02:30 CEST, the first of the two
    assert allowed.astimezone(tz).strftime("%H:%M %Z") == "02:30 CEST"


def test_eight_am_is_eight_am_local_on_both_sides_of_a_dst_change():
    new_york = ContactView("c-3", email="c@example.com", timezone="America/New_York")
    before = run(marketing(), contact=new_york, now=utc(2026, 3, 8, 5, 0))  # 00:00 EST, the night of the change
    after = run(marketing(), contact=new_york, now=utc(2026, 3, 9, 4, 0))  # 00:00 EDT
    assert before == Defer(utc(2026, 3, 8, 12, 0), "quiet_hours")  # 08:00 EDT
    assert after == Defer(utc(2026, 3, 9, 12, 0), "quiet_hours")  # 08:00 EDT


# frequency caps

WEEKLY = CapRule("marketing_weekly", max=2, window=timedelta(days=7))
CEILING = CapRule("global_ceiling", max=3, window=timedelta(days=30), categories=frozenset({"care", "marketing"}))
CAPPED = HouseRules(default_timezone=PARIS, caps=(WEEKLY, CEILING))


def test_marketing_over_a_cap_is_skipped_naming_the_rule():
    recent = [sent(NOON_PARIS - timedelta(days=1)), sent(NOON_PARIS - timedelta(days=2))]
    assert run(marketing(), recent=recent, rules=CAPPED) == Skip("frequency_cap:marketing_weekly")


def test_marketing_over_a_cap_is_deferred_until_the_window_frees_when_the_step_says_so():
    recent = [sent(NOON_PARIS - timedelta(days=1)), sent(NOON_PARIS - timedelta(days=6))]
    assert run(marketing(on_cap="defer"), recent=recent, rules=CAPPED) == Defer(
        NOON_PARIS + timedelta(days=1), "frequency_cap:marketing_weekly"
    )


def test_deliveries_older_than_the_window_do_not_count():
    recent = [sent(NOON_PARIS - timedelta(days=8)), sent(NOON_PARIS - timedelta(days=9))]
    assert run(marketing(), recent=recent, rules=CAPPED) == Send("email", "ada@example.com")


def test_care_counts_toward_the_ceiling_but_is_never_capped():
    three_care = [sent(NOON_PARIS - timedelta(days=d), category="care") for d in (1, 2, 3)]
    assert run(marketing(category="care"), recent=three_care, rules=CAPPED) == Send("email", "ada@example.com")
    assert run(marketing(), recent=three_care, rules=CAPPED) == Skip("frequency_cap:global_ceiling")


def test_transactional_is_neither_counted_nor_capped():
    many = [sent(NOON_PARIS - timedelta(hours=h), category="transactional") for h in range(1, 10)]
    assert run(marketing(), recent=many, rules=CAPPED) == Send("email", "ada@example.com")
    assert run(marketing(category="transactional"), recent=many, rules=CAPPED) == Send("email", "ada@example.com")


def test_a_channel_cap_counts_and_caps_only_its_channel():
    sms_cap = HouseRules(default_timezone=PARIS, caps=(CapRule("sms_weekly", 1, timedelta(days=7), channel="sms"),))
    recent = [sent(NOON_PARIS - timedelta(days=1), channel="sms")]
    assert run(marketing(channels=("sms",)), recent=recent, rules=sms_cap, preferences=SMS_OK) == Skip(
        "frequency_cap:sms_weekly"
    )
    assert run(marketing(), recent=recent, rules=sms_cap) == Send("email", "ada@example.com")


def test_a_contact_own_limit_applies_on_top_of_the_house_caps():
    once_a_month = PreferenceView(frequency_limit=CapRule("contact", 1, timedelta(days=30)))
    recent = [sent(NOON_PARIS - timedelta(days=20))]
    assert run(marketing(), recent=recent, rules=CAPPED, preferences=once_a_month) == Skip("frequency_cap:contact")


# pause and hold


def test_paused_contact_skips_marketing_and_defers_care():
    paused = PreferenceView(paused_until=NOON_PARIS + timedelta(days=14))
    assert run(marketing(), preferences=paused) == Skip("paused")
    assert run(marketing(category="care"), preferences=paused) == Defer(NOON_PARIS + timedelta(days=14), "paused")
    assert run(marketing(category="transactional"), preferences=paused) == Send("email", "ada@example.com")


def test_a_deferral_past_the_hold_deadline_is_expired():
    held = marketing(held_since=NIGHT_PARIS, max_hold=timedelta(hours=2))
    assert run(held, now=NIGHT_PARIS) == Skip("expired")


def test_a_message_asked_again_after_its_deadline_is_expired():
    held = marketing(held_since=NOON_PARIS - timedelta(hours=3), max_hold=timedelta(hours=2))
    assert run(held) == Skip("expired")


@pytest.mark.parametrize("hold", [timedelta(hours=9), timedelta(days=1)])
def test_a_deferral_within_the_hold_stands(hold):
    held = marketing(held_since=NIGHT_PARIS, max_hold=hold)
    assert run(held, now=NIGHT_PARIS) == Defer(utc(2026, 6, 11, 6, 0), "quiet_hours")


def test_rules_that_leave_no_minute_free_skip_instead_of_waiting_forever():
    only_at_midnight = PreferenceView(send_windows=("0 0 * * *",))
    assert run(marketing(), preferences=only_at_midnight) == Skip("send_window")
