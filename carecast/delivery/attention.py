"""The deliveries that need a human: `uncertain` (maybe out, not resent) and `failed` (not out, given up).

What `carecast deliveries list` prints, newest first, with the reason and what the
provider last said.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from carecast.store.models import Delivery

NEEDS_A_HUMAN = ("uncertain", "failed")


@dataclass(frozen=True)
class Attention:
    delivery_id: int
    updated_at: datetime
    status: str
    reason: str | None
    category: str
    campaign_id: str
    step_id: str
    channel: str | None
    contact_id: str
    said: str | None  # the provider's (or the renderer's) last words on it

    def line(self) -> str:
        why = f"{self.status}:{self.reason}" if self.reason else self.status
        where = f"{self.campaign_id}/{self.step_id}"
        said = f"  — {self.said}" if self.said else ""
        return (
            f"{self.delivery_id:>8}  {self.updated_at:%Y-%m-%d %H:%M}Z  {why:<32} {self.category:<13} "
            f"{where:<32} {self.channel or '-':<5} {self.contact_id}{said}"
        )


def needing_attention(
    session: Session, statuses: tuple[str, ...] = NEEDS_A_HUMAN, campaign_id: str | None = None, limit: int = 100
) -> list[Attention]:
    query = select(Delivery).where(Delivery.status.in_(statuses))
    if campaign_id is not None:
        query = query.where(Delivery.campaign_id == campaign_id)
    rows = session.scalars(query.order_by(Delivery.updated_at.desc(), Delivery.id.desc()).limit(limit))
    return [
        Attention(
            row.id,
            row.updated_at,
            row.status,
            row.reason,
            row.category,
            row.campaign_id,
            row.step_id,
            row.channel,
            row.contact_id,
            _last_words(row.status_history),
        )  # fmt: skip
        for row in rows
    ]


def _last_words(history: list[dict] | None) -> str | None:
    for entry in reversed(history or []):
        if entry.get("error"):
            return str(entry["error"])[:200]
    return None
