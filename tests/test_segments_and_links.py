"""SMS segment counting and signed preference-center links."""

import pytest

from carecast.render.links import LinkSigner
from carecast.render.segments import count_segments


@pytest.mark.parametrize(
    ("text", "encoding", "segments"),
    [
        ("a" * 160, "GSM-7", 1),
        ("a" * 161, "GSM-7", 2),
        ("a" * 306, "GSM-7", 2),
        ("a" * 307, "GSM-7", 3),
        ("€" * 80, "GSM-7", 1),  # extension characters count two: 160 septets
        ("€" * 81, "GSM-7", 2),
        ("é" * 160, "GSM-7", 1),  # é is in the GSM-7 basic table
        ("ê" * 70, "UCS-2", 1),  # ê is not: the whole message becomes UCS-2
        ("ê" * 71, "UCS-2", 2),
        ("a" * 134 + "😀", "UCS-2", 3),  # an emoji is two UTF-16 units: 136 units, 67 per segment
    ],
)
def test_segments_follow_the_carrier_rules(text, encoding, segments):
    count = count_segments(text)
    assert (count.encoding, count.segments) == (encoding, segments)


def test_tokens_round_trip_and_cannot_be_altered_or_forged():
    signer = LinkSigner("s3cret", "https://care.example.com/")
    token = signer.token("c-1042", "offers")
    assert signer.read(token) == ("c-1042", "offers")
    payload, signature = token.split(".")
    other = LinkSigner("s3cret", "https://x").token("c-9999", "offers").split(".")[0]
    assert signer.read(f"{other}.{signature}") is None
    tampered = ("B" if signature[0] == "A" else "A") + signature[1:]
    assert signer.read(f"{payload}.{tampered}") is None
    assert LinkSigner("another secret", "https://x").read(token) is None
    assert signer.read("garbage") is None
    assert signer.unsubscribe_url("c-1", None).startswith("https://care.example.com/u/")
