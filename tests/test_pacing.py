"""Provider pacing: a token bucket per channel in the store, shared by every worker."""

from datetime import UTC, datetime, timedelta

import pytest

from carecast.store.pacing import lane, take

pytestmark = pytest.mark.store
T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def test_a_full_bucket_lets_a_second_worth_through_at_once(sessions):
    with sessions.begin() as session:
        assert take(session, "sms", 100, rate=100, now=T0) == 0


def test_more_than_the_bucket_holds_waits_for_the_rest(sessions):
    with sessions.begin() as session:
        assert take(session, "sms", 250, rate=100, now=T0) == pytest.approx(1.5)


def test_takers_queue_up_behind_each_other(sessions):
    with sessions.begin() as session:
        assert take(session, "sms", 100, rate=100, now=T0) == 0
    with sessions.begin() as session:
        assert take(session, "sms", 50, rate=100, now=T0) == pytest.approx(0.5)
    with sessions.begin() as session:
        assert take(session, "sms", 50, rate=100, now=T0) == pytest.approx(1.0)


def test_the_bucket_refills_with_time_but_never_beyond_one_second(sessions):
    with sessions.begin() as session:
        take(session, "email", 200, rate=200, now=T0)
    with sessions.begin() as session:
        assert take(session, "email", 100, rate=200, now=T0 + timedelta(seconds=0.5)) == 0
    with sessions.begin() as session:
        assert take(session, "email", 300, rate=200, now=T0 + timedelta(minutes=5)) == pytest.approx(0.5)


def test_channels_are_paced_apart(sessions):
    with sessions.begin() as session:
        take(session, "sms", 100, rate=100, now=T0)
        assert take(session, "email", 100, rate=100, now=T0) == 0


def test_a_share_of_each_rate_is_kept_for_transactional_and_care_messages():
    assert lane("email", "marketing", 500, 0.2) == ("email", pytest.approx(400))
    assert lane("email", "transactional", 500, 0.2) == lane("email", "care", 500, 0.2) == ("email:care", 100)


def test_a_confirmation_never_queues_behind_a_broadcast(sessions):
    """A broadcast reserves ten seconds of marketing sends ahead; an order confirmation goes at once,
    and the two lanes together never pass the channel's rate."""
    rate, reserved = 500, 0.2
    bulk, bulk_rate = lane("email", "marketing", rate, reserved)
    care, care_rate = lane("email", "transactional", rate, reserved)
    with sessions.begin() as session:
        assert take(session, bulk, 4400, bulk_rate, now=T0) == pytest.approx(10)
    with sessions.begin() as session:
        assert take(session, care, 1, care_rate, now=T0) == 0
    assert bulk_rate + care_rate == rate


def test_a_page_is_leased_for_what_its_own_lane_needs():
    """A killed worker's page is taken over when its lease ends: twice what the page's lane needs, not the
    narrower lane's."""
    from activities.deliver import _lease
    from carecast.policy.model import HouseRules

    rules = HouseRules(send_rates={"email": 200, "voice": 5}, reserved_for_care=0.2)
    assert _lease([("email", "marketing")] * 1000, rules) == timedelta(minutes=1, seconds=2 * 1000 / 160)
    assert _lease([("email", "transactional")] * 100, rules) == timedelta(minutes=1, seconds=2 * 100 / 40)
    assert _lease([("sms", "marketing")] * 1000, rules) == timedelta(minutes=1)  # no rate, no pacing
    assert _lease([("voice", "care")] * 3 + [("email", "marketing")] * 80, rules) == timedelta(
        minutes=1, seconds=2 * (3 / 1 + 80 / 160)
    )
