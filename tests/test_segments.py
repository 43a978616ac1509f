"""SMS segment counting."""

import pytest

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
