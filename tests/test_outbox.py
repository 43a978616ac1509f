"""The local outbox: real .eml files, one readable line per message, no duplicates."""

from datetime import UTC, datetime
from email import message_from_bytes
from email.policy import default

from carecast.channels.base import OutboundMessage
from carecast.channels.outbox import OutboxProvider

AT = datetime(2026, 11, 25, 9, 30, 5, tzinfo=UTC)


def outbox(tmp_path, lines):
    return OutboxProvider(tmp_path / "outbox", echo=lines.append, clock=lambda: AT)


def email(delivery_id=7, **overrides):
    fields = dict(
        delivery_id=delivery_id, channel="email", to="ada@example.com", contact_id="c-1042",
        campaign_id="welcome", subject="Welcome to Acme, Ada", text="Hi Ada,\nthanks.",
        html="<p>Hi Ada,</p><p>thanks.</p>",
    )  # fmt: skip
    return OutboundMessage(**{**fields, **overrides})


def test_email_is_a_real_eml_with_text_and_html_parts(tmp_path):
    provider = outbox(tmp_path, [])
    receipt = provider.send(email(headers={"List-Unsubscribe": "<https://example.com/u/t>"}))

    parsed = message_from_bytes(provider.path_for(email()).read_bytes(), policy=default)
    assert parsed["To"] == "ada@example.com"
    assert parsed["Subject"] == "Welcome to Acme, Ada"
    assert parsed["List-Unsubscribe"] == "<https://example.com/u/t>"
    assert parsed.get_body(("plain",)).get_content().strip() == "Hi Ada,\nthanks."
    assert parsed.get_body(("html",)).get_content().strip() == "<p>Hi Ada,</p><p>thanks.</p>"
    assert receipt.provider == "outbox" and receipt.message_id == "outbox-7"


def test_each_message_prints_one_line_with_time_channel_contact_and_subject(tmp_path):
    lines: list[str] = []
    outbox(tmp_path, lines).send(email())
    assert lines == ["2026-11-25 09:30:05Z  email  c-1042  Welcome to Acme, Ada"]


def test_sms_line_shows_its_first_words(tmp_path):
    lines: list[str] = []
    sms = OutboundMessage(
        delivery_id=8, channel="sms", to="+14155550101", contact_id="c-7", campaign_id="welcome",
        text="Hi Chloe, welcome to Acme! Your account is ready. Reply HELP for help, STOP to opt out.",
    )  # fmt: skip
    provider = outbox(tmp_path, lines)
    provider.send(sms)
    assert lines == [
        "2026-11-25 09:30:05Z  sms    c-7  Hi Chloe, welcome to Acme! Your account is ready. Reply HELP for"
    ]
    assert "STOP to opt out." in provider.path_for(sms).read_text()


def test_sending_the_same_delivery_again_leaves_one_file(tmp_path):
    provider = outbox(tmp_path, [])
    provider.send(email())
    provider.send(email())
    assert [p.name for p in (tmp_path / "outbox").iterdir()] == ["0000000007-email.eml"]
