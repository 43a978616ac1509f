"""What a change of preferences turns on: only a fresh link may do it."""

from datetime import UTC, datetime, time, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from carecast.contacts.grants import grants
from carecast.contacts.schema import PreferencesInput
from carecast.policy.model import PreferenceView, QuietHours

AT = datetime(2026, 12, 7, 12, tzinfo=UTC)
NOW = PreferenceView(
    consent={"email": True, "sms": False, "voice": False},
    topics={"offers": False, "tips": True},
    marketing=True,
    quiet_hours=QuietHours(time(21), time(8)),
    paused_until=AT + timedelta(weeks=2),
)


@pytest.mark.parametrize(
    ("change", "turns_on"),
    [
        (dict(consent={"sms": True}), ["sms consent"]),
        (dict(consent={"email": True, "sms": False}), []),
        (dict(topics={"offers": True}), ["topic offers"]),
        (dict(topics={"new_topic": True, "tips": False}), []),  # a topic never chosen is already on
        (dict(quiet_hours=None), ["shorter quiet hours"]),
        (dict(quiet_hours={"start": "22:00", "end": "08:00"}), ["shorter quiet hours"]),
        (dict(quiet_hours={"start": "20:00", "end": "09:00"}), []),
        (dict(quiet_hours={"start": "08:00", "end": "21:00"}), ["shorter quiet hours"]),  # the other half of the day
        (dict(paused_until=None), ["an earlier end to the pause"]),
        (dict(paused_until=AT + timedelta(weeks=1)), ["an earlier end to the pause"]),
        (dict(paused_until=AT + timedelta(weeks=4)), []),
        (dict(preferred_channels=["email"]), []),
        (dict(send_windows=["* 9-17 * * *"]), ["other send windows"]),
    ],
)
def test_what_a_change_turns_on(change, turns_on):
    assert grants(NOW, PreferencesInput(**change), AT) == turns_on


def test_marketing_back_on_is_a_grant_and_off_is_not():
    off = PreferenceView(consent={"email": True}, marketing=False)
    assert grants(off, PreferencesInput(marketing=True), AT) == ["marketing"]
    assert grants(NOW, PreferencesInput(marketing=False), AT) == []


CLOCK = st.builds(lambda h, m: f"{h:02d}:{m:02d}", st.integers(0, 23), st.sampled_from([0, 15, 30, 45]))


@given(CLOCK, CLOCK, st.integers(0, 180), st.integers(0, 180))
def test_quiet_hours_that_only_grow_never_grant(start, end, earlier, later):
    """Starting earlier and ending later keeps every quiet minute of before."""
    old = QuietHours(time.fromisoformat(start), time.fromisoformat(end))
    if old.start == old.end:
        return  # no quiet hours at all: anything covers them
    minutes = lambda t: t.hour * 60 + t.minute  # noqa: E731
    length = (minutes(old.end) - minutes(old.start)) % 1440
    if length + earlier + later >= 1440:
        return  # grown into a whole day, which a start and an end cannot say
    clock = lambda m: f"{m % 1440 // 60:02d}:{m % 60:02d}"  # noqa: E731
    new_start, new_end = clock(minutes(old.start) - earlier), clock(minutes(old.end) + later)
    view = PreferenceView(consent={}, quiet_hours=old)
    change = PreferencesInput(quiet_hours={"start": new_start, "end": new_end})
    assert grants(view, change, AT) == []
