"""Choosing a channel: the step's channels, the contact's order, consent, address, suppression."""

from carecast.policy.channels import Reachability, choose_channel, ordered_channels
from carecast.policy.decision import Send, Skip

ADA = Reachability(
    addresses={"email": "ada@example.com", "sms": "+14155550101", "voice": "+14155550101"},
    consent={"email": True, "sms": True, "voice": False},
)


def test_first_step_channel_that_is_usable_wins():
    assert choose_channel(["email", "sms"], ADA, set()) == Send("email", "ada@example.com")


def test_contact_preferred_order_comes_before_the_step_order():
    prefers_sms = Reachability(ADA.addresses, ADA.consent, preferred=["sms"])
    assert choose_channel(["email", "sms"], prefers_sms, set()) == Send("sms", "+14155550101")


def test_preferred_channel_outside_the_step_is_ignored():
    assert ordered_channels(["email"], ["sms", "email"]) == ["email"]


def test_falls_back_when_the_first_channel_is_suppressed():
    assert choose_channel(["email", "sms"], ADA, {("email", "ada@example.com")}) == Send("sms", "+14155550101")


def test_skips_without_consent_naming_the_reason():
    assert choose_channel(["voice"], ADA, set()) == Skip("no_consent")


def test_skips_without_address():
    no_email = Reachability({"email": None}, {"email": True})
    assert choose_channel(["email"], no_email, set()) == Skip("no_address")


def test_skip_reason_is_that_of_the_most_preferred_channel():
    assert choose_channel(["email", "voice"], ADA, {("email", "ada@example.com")}) == Skip("suppressed")
