"""Preference-center links: sealed, opaque, dated and versioned; old ones still unsubscribe, never grant."""

import base64
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from carecast.render.links import FIRST_VERSION, GRANT_WINDOW, Link, LinkSigner
from tests.factories import legacy_link_token

NOW = datetime(2026, 12, 7, 9, 30, tzinfo=UTC)
SIGNER = LinkSigner("s" * 32, "https://care.example.com/", clock=NOW.timestamp)


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def test_a_token_says_whose_it_is_which_topic_when_and_which_version():
    token = SIGNER.token("c-1042", "offers", version=3)
    assert SIGNER.read(token) == Link("c-1042", "offers", NOW.replace(second=0), 3)
    assert SIGNER.unsubscribe_url("c-1", None, version=0).startswith("https://care.example.com/u/")


def test_the_same_link_made_twice_in_a_minute_is_the_same_text():
    assert SIGNER.token("c-1", "offers", version=0) == SIGNER.token("c-1", "offers", version=0)
    assert SIGNER.token("c-1", "offers", version=0) != SIGNER.token("c-2", "offers", version=0)


@given(st.text(min_size=1, max_size=128), st.one_of(st.none(), st.text(max_size=64)), st.integers(0, 10**6))
def test_no_token_shows_its_contact_and_any_altered_byte_makes_it_worthless(contact_id, topic, version):
    token = SIGNER.token(contact_id, topic, version=version)
    assert token.isascii() and "." not in token
    sealed = unb64(token)
    assert contact_id.encode() not in sealed or len(contact_id.encode()) < 4  # a short id can occur by chance
    assert SIGNER.read(token).contact_id == contact_id
    for index in range(len(sealed)):
        altered = bytearray(sealed)
        altered[index] ^= 0x01
        assert SIGNER.read(base64.urlsafe_b64encode(bytes(altered)).rstrip(b"=").decode()) is None


def test_a_token_of_another_secret_or_no_token_at_all_is_worthless():
    token = SIGNER.token("c-1", version=0)
    assert LinkSigner("t" * 32, "https://x").read(token) is None
    for garbage in ("garbage", "", "a.b", "é", token[:-2], token + "AA", "!!!!"):
        assert SIGNER.read(garbage) is None


def test_a_link_grants_for_ninety_days_and_only_while_its_version_is_current():
    link = SIGNER.read(SIGNER.token("c-1", version=2))
    since = NOW - timedelta(days=365)
    assert link.may_grant(2, since, NOW + GRANT_WINDOW - timedelta(minutes=1))
    assert not link.may_grant(2, since, NOW + GRANT_WINDOW + timedelta(minutes=1))
    assert not link.may_grant(3, since, NOW)


def test_a_link_made_before_the_contact_was_created_never_grants():
    """A contact forgotten and created again under the same id: the first one's links are not its own."""
    link = SIGNER.read(SIGNER.token("c-1", version=0))
    assert not link.may_grant(0, NOW + timedelta(minutes=5), NOW + timedelta(minutes=10))
    assert link.may_grant(0, NOW + timedelta(seconds=20), NOW + timedelta(minutes=10))  # made the same minute


def test_a_link_from_before_links_carried_their_age_still_reads_but_never_grants():
    token = legacy_link_token("s" * 32, "c-7", "offers")
    link = SIGNER.read(token)
    assert (link.contact_id, link.topic, link.version) == ("c-7", "offers", FIRST_VERSION)
    assert not link.may_grant(0, datetime(2020, 1, 1, tzinfo=UTC), NOW)
    payload, _, signature = token.partition(".")
    assert SIGNER.read(f"{payload}.{signature[::-1]}") is None
    assert LinkSigner("t" * 32, "https://x").read(token) is None


def test_a_copy_keeps_the_age_and_version_of_the_link_it_copies():
    old = SIGNER.read(SIGNER.token("c-1", "offers", version=1, issued_at=NOW - timedelta(days=200)))
    copy = SIGNER.read(SIGNER.token(old.contact_id, version=old.version, issued_at=old.issued_at))
    assert (copy.topic, copy.issued_at, copy.version) == (None, old.issued_at, 1)


def test_links_sent_before_the_secret_changed_still_open():
    old_secret = LinkSigner("o" * 32, "https://x", clock=NOW.timestamp)
    sealed, legacy = old_secret.token("c-1", "offers", version=0), legacy_link_token("o" * 32, "c-1", "offers")
    rotated = LinkSigner("n" * 32, "https://x", previous=["o" * 32], clock=NOW.timestamp)
    assert rotated.read(sealed).contact_id == "c-1" and rotated.read(legacy).contact_id == "c-1"
    assert LinkSigner("n" * 32, "https://x").read(sealed) is None
    assert old_secret.read(rotated.token("c-1", version=0)) is None  # new links are made under the new secret
