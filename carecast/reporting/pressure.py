"""`carecast report pressure`: how many messages each contact got lately, across every campaign.

The check that "twenty a month, and every one welcome" still holds: for the last 30 days, the
distribution of messages per contact (every contact in the store, those who got none too)
by category and in all, how many contacts are at 80 % of the global ceiling or more (counted
as the ceiling counts: care and marketing messages in its own window), and which campaigns
sent the most of it. A message counts once it was handed to a provider.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from carecast.campaign.durations import format_duration
from carecast.campaign.house_rules import CeilingSpec
from carecast.delivery.ledger import HANDED_OVER
from carecast.store.house_rules import newest_house_spec
from carecast.store.models import Contact, Delivery

WINDOW = timedelta(days=30)
NEAR = 0.8  # of the ceiling
CATEGORIES = ("transactional", "care", "marketing")
CEILING_CATEGORIES = ("care", "marketing")  # what the global ceiling counts


@dataclass(frozen=True)
class Spread:
    """Messages per contact: the median, the 95th percentile (nearest rank) and the most."""

    p50: int
    p95: int
    max: int


@dataclass
class Pressure:
    since: datetime
    contacts: int  # every contact in the store
    reached: int  # those who got at least one message in the window
    spread: dict[str, Spread]  # a category, or "all" → messages per contact
    ceiling: dict | None  # {"max": 20, "per": "30d"}, the deployed policy's
    near_ceiling: int = 0  # contacts at NEAR × the ceiling or more
    campaigns: list[dict] = field(default_factory=list)  # the most sending campaigns first


def percentile(sorted_counts: list[int], share: float) -> int:
    """The nearest-rank percentile of counts sorted in ascending order (0 for none)."""
    if not sorted_counts:
        return 0
    return sorted_counts[max(0, math.ceil(share * len(sorted_counts)) - 1)]


def pressure(session: Session, now: datetime, fallback_ceiling: dict | None, top: int = 10) -> Pressure:
    since = now - WINDOW
    contacts = session.scalar(select(func.count()).select_from(Contact)) or 0
    d = Delivery
    sent = [d.status.in_(HANDED_OVER), d.sent_at > since, d.sent_at <= now]
    per_contact: dict[str, Counter] = defaultdict(Counter)
    for contact_id, category, count in session.execute(
        select(d.contact_id, d.category, func.count()).where(*sent).group_by(d.contact_id, d.category)
    ):
        per_contact[contact_id][category] += count
    spread = {}
    for name in (*CATEGORIES, "all"):
        counts = [sum(c.values()) if name == "all" else c[name] for c in per_contact.values()]
        counts = sorted(counts + [0] * (contacts - len(counts)))  # those who got nothing count too
        spread[name] = Spread(percentile(counts, 0.5), percentile(counts, 0.95), counts[-1] if counts else 0)
    deployed = newest_house_spec(session)
    ceiling = ceiling_of(deployed.global_ceiling) if deployed is not None else fallback_ceiling
    report = Pressure(since, contacts, len(per_contact), spread, ceiling)
    if ceiling is not None:
        report.near_ceiling = _near_ceiling(session, now, ceiling)
    rows = session.execute(
        select(d.campaign_id, d.category, func.count()).where(*sent).group_by(d.campaign_id, d.category)
        .order_by(func.count().desc(), d.campaign_id).limit(top)
    ).all()  # fmt: skip
    total = sum(sum(c.values()) for c in per_contact.values())
    report.campaigns = [dict(campaign_id=c, category=cat, messages=n, share=n / total if total else 0.0)
                        for c, cat, n in rows]  # fmt: skip
    return report


def ceiling_of(spec: CeilingSpec | None) -> dict | None:
    """The global ceiling as reports show it: `{"max": 20, "per": "30d"}` (whole days in days)."""
    if spec is None:
        return None
    per = f"{spec.per.days}d" if spec.per == timedelta(days=spec.per.days) else format_duration(spec.per)
    return {"max": spec.max, "per": per}


def _near_ceiling(session: Session, now: datetime, ceiling: dict) -> int:
    from carecast.campaign.durations import parse_duration

    per, limit = parse_duration(ceiling["per"]), ceiling["max"]
    d = Delivery
    counted = (
        select(d.contact_id)
        .where(d.status.in_(HANDED_OVER), d.category.in_(CEILING_CATEGORIES), d.sent_at > now - per, d.sent_at <= now)
        .group_by(d.contact_id)
        .having(func.count() >= math.ceil(NEAR * limit))
        .subquery()
    )
    return session.scalar(select(func.count()).select_from(counted)) or 0
