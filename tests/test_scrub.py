"""Provider error text scrubbed of addresses before it leaves the store."""

import pytest

from carecast.channels.scrub import scrub


@pytest.mark.parametrize(
    ("said", "expected"),
    [
        (
            "The 'To' number +14155550101 is not a valid phone number.",
            "The 'To' number [phone] is not a valid phone number.",
        ),
        ("Unsubscribed recipient: +1 (415) 555-0101", "Unsubscribed recipient: [phone]"),
        ("does not accept mail: Ada.Lovelace+news@mail.example.co.uk", "does not accept mail: [email]"),
        (
            "Twilio error 21610 at 2026-12-06T10:00:00Z (HTTP 400)",
            "Twilio error 21610 at 2026-12-06T10:00:00Z (HTTP 400)",
        ),
    ],
)
def test_addresses_are_masked_and_codes_and_times_are_kept(said, expected):
    assert scrub(said) == expected


def test_the_recipient_is_masked_whatever_its_shape():
    assert scrub("no mailbox named ada at example dot com: ada-at-example", "ada-at-example") == (
        "no mailbox named ada at example dot com: [address]"
    )


def test_the_recipients_number_is_masked_without_its_plus_too():
    said = "Attempt to send to unsubscribed recipient 14155550101 (To: +14155550101)"
    assert scrub(said, "+14155550101") == "Attempt to send to unsubscribed recipient [address] (To: [address])"
