"""Properties of the policy over generated contacts, times and message sequences."""

from datetime import UTC, datetime, time, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from carecast.policy.decide import decide
from carecast.policy.decision import Defer, Send
from carecast.policy.local_time import MINUTE, blocker, ceil_to_minute, wall
from carecast.policy.model import CapRule, ContactView, HouseRules, Message, PreferenceView, QuietHours, SentDelivery
from carecast.policy.timezones import zone

# Zones with DST both ways, a half-hour DST (Lord Howe), none at all, and odd offsets.
ZONES = ["Europe/Paris", "America/New_York", "Australia/Lord_Howe", "America/Sao_Paulo", "Asia/Kolkata", "UTC"]
# Windows that recur at least daily, so brute-force checks stay short.
WINDOWS = ["* 9-17 * * *", "*/15 8-20 * * *", "0-29 * * * *", "* 7,12,19 * * *", "30 18 * * *"]

instants = st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC)).map(
    lambda d: d.replace(microsecond=0)
)
quiet_hours = st.builds(
    QuietHours,
    st.builds(time, st.integers(0, 23), st.sampled_from([0, 15, 30, 45])),
    st.builds(time, st.integers(0, 23), st.sampled_from([0, 15, 30, 45])),
)
contacts = st.builds(
    ContactView, st.just("c-1"), st.just("a@example.com"), st.just("+33612345678"), st.sampled_from(ZONES)
)
preferences = st.builds(
    PreferenceView,
    consent=st.just({"email": True, "sms": True}),
    quiet_hours=st.none() | quiet_hours,
    send_windows=st.lists(st.sampled_from(WINDOWS), max_size=2, unique=True).map(tuple),
)
house = st.builds(HouseRules, default_timezone=st.sampled_from(ZONES), quiet_hours=st.none() | quiet_hours)
messages = st.builds(
    Message,
    category=st.sampled_from(["transactional", "care", "marketing"]),
    channels=st.sampled_from([("email",), ("sms",), ("sms", "email")]),
    urgent=st.booleans(),
)


def rules_in_force(message, prefs, rules, channel):
    """The quiet hours and windows that apply to this message, as the policy table says."""
    if message.category == "transactional" and (channel == "email" or message.urgent):
        return (), ()
    quiet = tuple(q for q in (rules.quiet_hours, prefs.quiet_hours) if q)
    return quiet, prefs.send_windows if message.category != "transactional" else ()


@settings(max_examples=300, deadline=None)
@given(messages, contacts, preferences, house, instants)
def test_a_send_is_never_in_quiet_hours_or_outside_a_send_window(message, contact, prefs, rules, now):
    decision = decide(message, contact, prefs, set(), [], rules, now)
    if isinstance(decision, Send):
        quiet, windows = rules_in_force(message, prefs, rules, decision.channel)
        assert blocker(wall(now, zone(contact.timezone)), quiet, windows) is None


@settings(max_examples=150, deadline=None)
@given(messages, contacts, preferences, house, instants)
def test_a_defer_is_to_the_earliest_allowed_minute(message, contact, prefs, rules, now):
    decision = decide(message, contact, prefs, set(), [], rules, now)
    if not isinstance(decision, Defer):
        return
    channel = next(c for c in message.channels if c in ("email", "sms"))
    quiet, windows = rules_in_force(message, prefs, rules, channel)
    tz = zone(contact.timezone)
    assert blocker(wall(decision.until, tz), quiet, windows) is None
    minute = ceil_to_minute(now)
    while minute < decision.until:  # every minute before it is blocked
        assert blocker(wall(minute, tz), quiet, windows) is not None, minute
        minute += MINUTE


@settings(max_examples=300, deadline=None)
@given(contacts, preferences, house, instants)
def test_transactional_email_is_never_deferred_by_quiet_hours(contact, prefs, rules, now):
    message = Message(category="transactional", channels=("email",))
    assert isinstance(decide(message, contact, prefs, set(), [], rules, now), Send)


cap_rules = st.lists(
    st.builds(
        CapRule,
        name=st.sampled_from(["a", "b", "c"]),
        max=st.integers(0, 4),
        window=st.sampled_from([timedelta(hours=6), timedelta(days=1), timedelta(days=7)]),
        categories=st.sampled_from([frozenset({"marketing"}), frozenset({"care", "marketing"})]),
        channel=st.sampled_from([None, "email", "sms"]),
    ),
    min_size=1,
    max_size=3,
)
attempts = st.lists(
    st.tuples(
        st.integers(0, 36 * 60),  # minutes since the previous attempt
        st.sampled_from(["transactional", "care", "marketing"]),
        st.sampled_from([("email",), ("sms",), ("sms", "email")]),
    ),
    min_size=1,
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(cap_rules, attempts)
def test_no_marketing_send_ever_breaks_a_cap(caps, sequence):
    rules = HouseRules(default_timezone="UTC", caps=tuple(caps))
    contact = ContactView("c-1", email="a@example.com", phone="+33612345678", timezone="UTC")
    prefs = PreferenceView(consent={"email": True, "sms": True})
    now = datetime(2026, 1, 1, tzinfo=UTC)
    history: list[SentDelivery] = []
    for gap, category, channels in sequence:
        now += timedelta(minutes=gap)
        decision = decide(Message(category, channels), contact, prefs, set(), history, rules, now)
        if not isinstance(decision, Send):
            continue
        if category == "marketing":
            for rule in caps:
                if rule.channel not in (None, decision.channel):
                    continue
                before = [
                    d
                    for d in history
                    if now - rule.window < d.at <= now
                    and d.category in rule.categories
                    and rule.channel in (None, d.channel)
                ]
                assert len(before) + 1 <= rule.max, (rule, before)
        history.append(SentDelivery(now, category, decision.channel))
