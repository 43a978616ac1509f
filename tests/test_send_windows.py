"""Compiled send windows agree with croniter on every minute."""

from datetime import datetime

from croniter import croniter
from hypothesis import given, settings
from hypothesis import strategies as st

from carecast.policy.send_windows import compile_window

EXPRESSIONS = [
    "* 9-17 * * 1-5", "*/15 8-20 * * *", "0 10 * * 7", "0 10 1 * mon", "0-29 * 1,15 * sun",
    "* * * 6-8 *", "30 18 L * *", "0 10 * * 5#2", "* 7 */2 * *",
]  # fmt: skip


@settings(max_examples=500, deadline=None)
@given(st.sampled_from(EXPRESSIONS), st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2028, 12, 31)))
def test_compiled_window_matches_exactly_when_croniter_does(expression, moment):
    moment = moment.replace(second=0, microsecond=0)
    assert compile_window(expression).matches(moment) == croniter.match(expression, moment)
