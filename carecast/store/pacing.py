"""Pacing hand-overs to providers at a rate per channel, across all workers.

Each channel's rate is split in two token buckets (`lane`): a reserved share for
transactional and care messages, the rest for marketing, so a confirmation never queues
behind a broadcast's reservations and the two together never pass the provider's rate.
Taking n tokens refills the bucket for the time elapsed (up to one second's worth), then
takes them even if that drives it negative, and answers how long to wait before handing
the messages over: a reservation ahead, so concurrent takers queue up instead of retrying.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from carecast.store.models import RateBucket
from carecast.store.writes import upsert

PRIORITY = frozenset({"transactional", "care"})


def lane(channel: str, category: str, rate: float, reserved: float) -> tuple[str, float]:
    """The bucket a message of `category` is paced by, and its rate: `reserved` of the channel's rate for
    transactional and care messages (`email:care`), the rest for marketing (the channel's own bucket)."""
    if category in PRIORITY:
        return f"{channel}:care", rate * reserved
    return channel, rate * (1 - reserved)


def take(session: Session, channel: str, count: int, rate: float, now: datetime) -> float:
    """Seconds to wait before handing `count` messages to the channel's provider (0 when none)."""
    upsert(session, RateBucket, [dict(channel=channel, tokens=rate, updated_at=now)], ["channel"])
    bucket = session.scalars(select(RateBucket).where(RateBucket.channel == channel).with_for_update()).one()
    elapsed = max((now - bucket.updated_at).total_seconds(), 0.0)
    available = min(rate, bucket.tokens + elapsed * rate)  # at most one second's burst
    bucket.tokens = available - count
    bucket.updated_at = max(now, bucket.updated_at)
    return max(0.0, -bucket.tokens / rate)
