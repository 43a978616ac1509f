"""The earliest moment a message may go out, given quiet hours and send windows in a local zone.

Everything works on whole minutes. Wall-clock times are read from UTC instants
(never the reverse) so DST gaps and folds cannot create a wrong answer: jumping
to "the end of quiet hours" uses the earliest instant that could carry that wall
time, and the loop re-checks, stepping minute by minute only inside a DST gap.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from croniter import croniter

from carecast.policy.model import QuietHours
from carecast.policy.send_windows import compile_window

MINUTE = timedelta(minutes=1)
# Far enough for monthly windows; rules that leave no minute free give up here.
SEARCH_HORIZON = timedelta(days=35)


def ceil_to_minute(moment: datetime) -> datetime:
    floor = moment.replace(second=0, microsecond=0)
    return floor if floor == moment else floor + MINUTE


def wall(moment: datetime, tz: ZoneInfo) -> datetime:
    """Local wall-clock time of an instant, naive."""
    return moment.astimezone(tz).replace(tzinfo=None)


def earliest_instant_for_wall(local: datetime, tz: ZoneInfo) -> datetime:
    """The earliest UTC instant that may show wall time `local` (or, in a DST gap, just before)."""
    return min(local.replace(tzinfo=tz, fold=fold).astimezone(UTC) for fold in (0, 1))


def in_window(local: datetime, windows: Sequence[str]) -> bool:
    return any(compile_window(expression).matches(local) for expression in windows)


def quiet_end(local: datetime, quiet: QuietHours) -> datetime:
    """The wall time at which the quiet span containing `local` ends."""
    end = local.replace(hour=quiet.end.hour, minute=quiet.end.minute, second=0, microsecond=0)
    return end if end > local else end + timedelta(days=1)


def next_window_start(local: datetime, windows: Sequence[str]) -> datetime:
    return min(croniter(expression, local).get_next(datetime) for expression in windows)


def blocker(local: datetime, quiet: Sequence[QuietHours], windows: Sequence[str]) -> str | None:
    """Why this wall-clock minute is not allowed, or None when it is."""
    if any(q.contains(local.time()) for q in quiet):
        return "quiet_hours"
    if windows and not in_window(local, windows):
        return "send_window"
    return None


def earliest_allowed(
    now: datetime, tz: ZoneInfo, quiet: Sequence[QuietHours], windows: Sequence[str]
) -> tuple[datetime | None, str | None]:
    """The first allowed minute at or after `now`, and what held the message until then.

    The reason is the rule that blocked `now` itself (None when `now` is allowed).
    The time is None when the rules leave no minute free within the search horizon
    (say, a send window that lies wholly inside quiet hours).
    """
    first_reason = blocker(wall(now, tz), quiet, windows)
    if first_reason is None:
        return now, None
    moment = ceil_to_minute(now)
    limit = now + SEARCH_HORIZON
    while moment < limit:
        local = wall(moment, tz)
        reason = blocker(local, quiet, windows)
        if reason is None:
            return moment, first_reason
        if reason == "quiet_hours":
            ends = [quiet_end(local, q) for q in quiet if q.contains(local.time())]
            target = max(ends)
        else:
            target = next_window_start(local, windows)
        moment = max(earliest_instant_for_wall(target, tz), moment + MINUTE)
    return None, first_reason
