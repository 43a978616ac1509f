"""Pacing hand-overs to providers at a rate per channel, across all workers.

Each channel has one token bucket row. Taking n tokens refills the bucket for
the time elapsed (up to one second's worth), then takes them even if that
drives it negative, and answers how long to wait before handing the messages
over: a reservation ahead, so concurrent takers queue up instead of retrying.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from carecast.store.models import RateBucket
from carecast.store.writes import upsert


def take(session: Session, channel: str, count: int, rate: float, now: datetime) -> float:
    """Seconds to wait before handing `count` messages to the channel's provider (0 when none)."""
    upsert(session, RateBucket, [dict(channel=channel, tokens=rate, updated_at=now)], ["channel"])
    bucket = session.scalars(select(RateBucket).where(RateBucket.channel == channel).with_for_update()).one()
    elapsed = max((now - bucket.updated_at).total_seconds(), 0.0)
    available = min(rate, bucket.tokens + elapsed * rate)  # at most one second's burst
    bucket.tokens = available - count
    bucket.updated_at = max(now, bucket.updated_at)
    return max(0.0, -bucket.tokens / rate)
