"""The delivery ledger: one row per message, the statuses it moves through, and the SQL that moves it.

Every message has one row in `deliveries` under its idempotency key, written before
any provider is called. Its statuses, and the only moves between them:

    reserved ─┬─▶ sending ─┬─▶ sent ──────────┐
      ▲       │     ▲      ├─▶ uncertain ─────┤ provider news (callbacks):
      │       │     │      │     │ the one    ├─▶ delivered | bounced | dropped |
      │       │     │      │     ▼ resend     │   undelivered | not_answered
      │       │     └──────┼── (uncertain)    │
      └───────┼────────────┤ refused for now: back to reserved (429, 5xx, a refused key)
              │            └─▶ failed (a broken template, a refusal of the message as it is)
              ├─▶ deferred ──▶ (as from reserved, when its retry_at comes)
              └─▶ skipped | holdout | failed (it waited its whole hold for a fix)

`retry_at` says when a row waiting to be tried again may go (deferred, refused for
now, an uncertain message due its one resend) and, on a `sending` row, when the
claim's lease ends; it is cleared once the row is settled. `sent_at` is when the
policy let it go: rows that never reached a provider (NOT_COUNTED) do not count
toward caps, so a message known not to be out loses its `sent_at`.

The claim writes rows it changed in memory (`Row`, `move`, `write`); the hand-over's
outcomes are recorded in SQL without reading the rows back (`record`); provider
callbacks move a row only where MOVES allows (`may_move`), and note the rest.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import bindparam, case, exists, func, insert, literal, select, text, update
from sqlalchemy.orm import Session

from carecast.policy.model import SentDelivery
from carecast.store.expressions import json_append, one_of
from carecast.store.models import Delivery, DeliveryEvent, utcnow
from carecast.store.types import JsonDocument, UtcDateTime
from carecast.store.writes import bulk_insert


class Status(StrEnum):
    RESERVED = "reserved"
    DEFERRED = "deferred"
    SENDING = "sending"
    SENT = "sent"
    UNCERTAIN = "uncertain"
    FAILED = "failed"
    SKIPPED = "skipped"
    HOLDOUT = "holdout"
    DELIVERED = "delivered"
    BOUNCED = "bounced"
    DROPPED = "dropped"
    UNDELIVERED = "undelivered"
    NOT_ANSWERED = "not_answered"


# What providers report after the hand-over (carecast.feedback).
FEEDBACK = frozenset({Status.DELIVERED, Status.BOUNCED, Status.DROPPED, Status.UNDELIVERED, Status.NOT_ANSWERED})
# A row in one of these is returned as recorded (an uncertain message due its resend is the one exception).
FINAL = frozenset({Status.SENT, Status.SKIPPED, Status.FAILED, Status.UNCERTAIN, Status.HOLDOUT}) | FEEDBACK
# Rows that never reached a provider do not count toward caps.
NOT_COUNTED = (Status.RESERVED, Status.DEFERRED, Status.SKIPPED, Status.FAILED, Status.HOLDOUT)
# A message the provider took (or may have: uncertain), whatever it said after: what reports count as sent.
HANDED_OVER = (Status.SENT, Status.UNCERTAIN, *sorted(FEEDBACK))

_WAITING_MOVES = {Status.SENDING, Status.DEFERRED, Status.RESERVED, Status.SKIPPED, Status.HOLDOUT, Status.FAILED}
MOVES: dict[Status, frozenset[Status]] = {
    Status.RESERVED: frozenset(_WAITING_MOVES),
    Status.DEFERRED: frozenset(_WAITING_MOVES),
    # recorded after the hand-over; taken over (sending again) or left uncertain once its lease is over
    Status.SENDING: frozenset({Status.SENDING, Status.SENT, Status.UNCERTAIN, Status.RESERVED, Status.FAILED})
    | FEEDBACK,
    # the one resend (sending), or held back or withheld (uncertain again); the provider's news settles it
    Status.UNCERTAIN: frozenset({Status.SENDING, Status.UNCERTAIN}) | FEEDBACK,
    Status.SENT: FEEDBACK,
    **{news: FEEDBACK for news in FEEDBACK},  # later news replaces earlier (delivered, then bounced)
    Status.FAILED: frozenset(),
    Status.SKIPPED: frozenset(),
    Status.HOLDOUT: frozenset(),
}


# A `sending` row's reason says how far its attempt got: a page's messages are `claimed` until just before
# their request goes out, then `handing_over`; a single message is `handing_over` from its claim (marking it
# would cost the confirmation path a transaction). A stale row still `claimed` never left.
CLAIMED, HANDING_OVER = "claimed", "handing_over"


class IllegalMove(Exception):
    """A move MOVES does not allow: a defect in carecast, never a customer's or a provider's doing."""


def may_move(current: str, new: str) -> bool:
    return Status(new) in MOVES[Status(current)]


def entry(status: str, **details: Any) -> dict[str, Any]:
    """One entry of a row's history."""
    return {"status": status, "at": utcnow().isoformat(), **{k: v for k, v in details.items() if v is not None}}


@dataclass(eq=False)
class Row:
    """A delivery row as a batch sees it: read from the store (`id` set) or about to be inserted.

    The claim changes these in memory and writes them back with one INSERT and one
    executemany UPDATE: ORM units of work cost more than the policy on a page of a thousand.
    """

    key: str
    status: str
    id: int | None = None
    reason: str | None = None
    channel: str | None = None
    sent_at: datetime | None = None
    retry_at: datetime | None = None
    status_history: list[dict[str, Any]] = field(default_factory=list)
    columns: dict[str, Any] | None = None  # the fixed columns of a row not yet inserted
    changed: bool = False

    @classmethod
    def new(cls, key: str, **columns: Any) -> Row:
        return cls(key, Status.RESERVED, status_history=[entry(Status.RESERVED)], columns=columns)

    def ever(self, **details: Any) -> bool:
        """Whether an entry of its history has all these details (`status="uncertain"`, `kind="auth"`)."""
        return any(all(e.get(k) == v for k, v in details.items()) for e in self.status_history)

    @property
    def refusals(self) -> int:
        """How often a provider refused it for now (429, 5xx, a refused key) or none was configured."""
        return sum(1 for e in self.status_history if e.get("kind"))

    @property
    def resend_under_way(self) -> bool:
        """Whether its current hand-over is already its one resend."""
        current = next((e for e in reversed(self.status_history) if e.get("status") == Status.SENDING), {})
        return bool(current.get("resend"))


def move(row: Row, status: str, reason: str | None = None, retry_at: datetime | None = None, **details: Any) -> None:
    """A new status for the row, in memory; `retry_at` when it waits to be tried again (cleared otherwise)."""
    if not may_move(row.status, status):
        raise IllegalMove(f"delivery {row.id or row.key}: {row.status} -> {status}")
    row.status, row.reason, row.retry_at = status, reason, retry_at
    row.status_history = [*row.status_history, entry(status, reason=reason, **details)]
    row.changed = True


ROW_COLUMNS = (Delivery.id, Delivery.idempotency_key, Delivery.status, Delivery.reason, Delivery.channel,
               Delivery.sent_at, Delivery.retry_at, Delivery.status_history)  # fmt: skip


def load(session: Session, keys: Sequence[str]) -> dict[str, Row]:
    """The rows already written under these idempotency keys."""
    found = session.execute(select(*ROW_COLUMNS).where(one_of(session, Delivery.idempotency_key, keys)))
    return {
        r.idempotency_key: Row(
            r.idempotency_key, r.status, r.id, r.reason, r.channel, r.sent_at, r.retry_at, list(r.status_history or [])
        )  # fmt: skip
        for r in found
    }


def write(session: Session, rows: Iterable[Row], now: datetime | None = None) -> None:
    """Inserts the new rows (learning their ids) and updates the changed ones, a statement each; a deferral
    among them is also a `delivery_events` row, at `now`."""
    rows = list(rows)
    new = [r for r in rows if r.id is None]
    changed = [r for r in rows if r.changed and r.id is not None]
    if new:
        now = utcnow()
        if session.get_bind().dialect.name == "postgresql":
            # Ids from the sequence first, then COPY (INSERT ... RETURNING of a thousand rows
            # is one huge statement that psycopg re-parses on every page).
            numbers = session.execute(NEXT_DELIVERY_IDS, {"n": len(new)}).scalars().all()
            for r, number in zip(new, numbers, strict=True):
                r.id = number
            bulk_insert(session, Delivery.__table__, [_insert_values(r, now) for r in new])
        else:
            inserted = session.execute(
                insert(Delivery.__table__).returning(Delivery.idempotency_key, Delivery.id),
                [_insert_values(r, now) for r in new],
            )
            ids = dict(inserted.all())
            for r in new:
                r.id = ids[r.key]
    if changed:
        session.execute(UPDATE_ROW, [_update_values(r) for r in changed])
    _record_deferrals(session, [r.id for r in [*new, *changed] if r.status == Status.DEFERRED], now or utcnow())
    for r in rows:
        r.changed = False


def _record_deferrals(session: Session, delivery_ids: Sequence[int], now: datetime) -> None:
    """A `delivery_events` row for each deferral just written, with its reason, for reports: one statement."""
    if not delivery_ids:
        return
    d, e = Delivery, DeliveryEvent
    deferred = literal(Status.DEFERRED.value)
    before = exists().where(e.delivery_id == d.id, e.kind == deferred, e.reason.is_not_distinct_from(d.reason))
    chosen = select(d.id, d.campaign_id, d.campaign_version, d.step_id, d.channel, deferred, d.reason, ~before,
                    literal(now, e.occurred_at.type)).where(d.id.in_(sorted(delivery_ids)))  # fmt: skip
    columns = ("delivery_id", "campaign_id", "campaign_version", "step_id", "channel", "kind", "reason", "first",
               "occurred_at")  # fmt: skip
    session.execute(insert(DeliveryEvent).from_select(columns, chosen))


NEXT_DELIVERY_IDS = text("SELECT nextval(pg_get_serial_sequence('deliveries', 'id')) FROM generate_series(1, :n)")


def _insert_values(row: Row, now: datetime) -> dict[str, Any]:
    values = dict(row.columns, idempotency_key=row.key, status=row.status, reason=row.reason, channel=row.channel,
                  sent_at=row.sent_at, retry_at=row.retry_at, status_history=row.status_history, created_at=now,
                  updated_at=now)  # fmt: skip
    if row.id is not None:
        values["id"] = row.id
    return values


UPDATE_ROW = (
    update(Delivery.__table__)
    .where(Delivery.id == bindparam("b_id"))
    .values(
        status=bindparam("b_status"), reason=bindparam("b_reason"), channel=bindparam("b_channel"),
        sent_at=bindparam("b_sent_at"), retry_at=bindparam("b_retry_at"),
        status_history=bindparam("b_history", type_=Delivery.status_history.type), updated_at=bindparam("b_updated_at"),
    )
)  # fmt: skip


def _update_values(row: Row) -> dict:
    return dict(b_id=row.id, b_status=row.status, b_reason=row.reason, b_channel=row.channel, b_sent_at=row.sent_at,
                b_retry_at=row.retry_at, b_history=row.status_history, b_updated_at=utcnow())  # fmt: skip


# The hand-over's outcomes, recorded without reading the rows back. A provider's callback may have come
# before the record (its news is newer than "sent"): a row no longer `sending` keeps its status, and the
# hand-over still joins its history.
RECORD_SENT = (
    update(Delivery.__table__)
    .where(Delivery.id == bindparam("b_id"))
    .values(
        status=case((Delivery.status == Status.SENDING, Status.SENT.value), else_=Delivery.status), retry_at=None,
        reason=case((Delivery.status == Status.SENDING, None), else_=Delivery.reason),
        status_history=json_append(Delivery.status_history, bindparam("b_entry", type_=JsonDocument)),
        provider=bindparam("b_provider"), provider_message_id=bindparam("b_message_id"),
        segments=bindparam("b_segments"), updated_at=bindparam("b_updated_at"),
    )
)  # fmt: skip
# Known not to be out (back to reserved, to be tried again) or never to go (failed): no sent_at, not counted.
# Fenced by the attempt's lease: a late record of an attempt whose message another attempt took over since
# changes nothing (the row belongs to the newer attempt).
RECORD_NOT_SENT = (
    update(Delivery.__table__)
    .where(Delivery.id == bindparam("b_id"), Delivery.status == Status.SENDING,
           Delivery.retry_at == bindparam("b_lease", type_=UtcDateTime))
    .values(
        status=bindparam("b_status"), reason=bindparam("b_reason"), sent_at=None, retry_at=bindparam("b_retry_at"),
        status_history=json_append(Delivery.status_history, bindparam("b_entry", type_=JsonDocument)),
        updated_at=bindparam("b_updated_at"),
    )
)  # fmt: skip
# No answer after the request went out: it may be out, so it keeps its sent_at and counts toward caps.
RECORD_UNCERTAIN = (
    update(Delivery.__table__)
    .where(Delivery.id == bindparam("b_id"), Delivery.status == Status.SENDING,
           Delivery.retry_at == bindparam("b_lease", type_=UtcDateTime))
    .values(
        status=Status.UNCERTAIN.value, reason=bindparam("b_reason"), retry_at=bindparam("b_retry_at"),
        status_history=json_append(Delivery.status_history, bindparam("b_entry", type_=JsonDocument)),
        updated_at=bindparam("b_updated_at"),
    )
)  # fmt: skip


@dataclass
class Outcomes:
    """What a batch of hand-overs came to, gathered for one `record`; `lease`: the attempt's claim."""

    lease: datetime
    sent: list[dict[str, Any]] = field(default_factory=list)
    not_sent: list[dict[str, Any]] = field(default_factory=list)
    uncertain: list[dict[str, Any]] = field(default_factory=list)

    def add_sent(self, delivery_id: int, channel: str, provider: str, message_id: str | None, segments) -> None:
        self.sent.append(dict(b_id=delivery_id, b_entry=entry(Status.SENT, channel=channel), b_provider=provider,
                              b_message_id=message_id, b_segments=segments, b_updated_at=utcnow()))  # fmt: skip

    def add_not_sent(self, delivery_id: int, status: Status, reason: str | None, retry_at: datetime | None = None,
                     **details: Any) -> None:  # fmt: skip
        self.not_sent.append(dict(b_id=delivery_id, b_status=status.value, b_reason=reason, b_retry_at=retry_at,
                                  b_lease=self.lease,
                                  b_entry=entry(status, reason=reason, **details), b_updated_at=utcnow()))  # fmt: skip

    def add_uncertain(self, delivery_id: int, reason: str, retry_at: datetime | None, **details: Any) -> None:
        self.uncertain.append(dict(b_id=delivery_id, b_reason=reason, b_retry_at=retry_at, b_updated_at=utcnow(),
                                   b_lease=self.lease,
                                   b_entry=entry(Status.UNCERTAIN, reason=reason, **details)))  # fmt: skip


def record(session: Session, outcomes: Outcomes) -> None:
    for statement, values in (
        (RECORD_SENT, outcomes.sent),
        (RECORD_NOT_SENT, outcomes.not_sent),
        (RECORD_UNCERTAIN, outcomes.uncertain),
    ):
        if values:
            session.execute(statement, values)


def mark_handing_over(session: Session, delivery_ids: Sequence[int], lease: datetime) -> None:
    """Just before a page's request goes out: from here on, a crash leaves these messages in doubt."""
    session.execute(
        update(Delivery.__table__)
        .where(
            one_of(session, Delivery.id, list(delivery_ids)),
            Delivery.status == Status.SENDING,
            Delivery.retry_at == lease,
        )
        .values(reason=HANDING_OVER)
    )


def counted(
    session: Session, contact_ids: list[str], now: datetime, window: timedelta
) -> dict[str, list[SentDelivery]]:
    """Each contact's messages that count toward caps, sent within `window` before `now`."""
    found: dict[str, list[SentDelivery]] = defaultdict(list)
    rows = session.execute(
        select(Delivery.contact_id, Delivery.sent_at, Delivery.category, Delivery.channel).where(
            one_of(session, Delivery.contact_id, contact_ids),
            Delivery.sent_at > now - window,
            Delivery.status.not_in(NOT_COUNTED),
        )
    )
    for contact_id, at, category, channel in rows:
        found[contact_id].append(SentDelivery(at=at, category=category, channel=channel))
    return found


def due(session: Session, workflow_id: str, now: datetime, limit: int) -> list[str]:
    """The contacts of a run's rows whose retry_at has come, earliest first."""
    return list(
        session.scalars(
            select(Delivery.contact_id)
            .where(Delivery.workflow_id == workflow_id, Delivery.retry_at <= now)
            .order_by(Delivery.retry_at, Delivery.id)
            .limit(limit)
        )
    )


def waiting(session: Session, workflow_id: str) -> tuple[int, datetime | None]:
    """How many of a run's rows wait to be tried again, and when the first may go."""
    query = select(func.count(), func.min(Delivery.retry_at)).where(
        Delivery.workflow_id == workflow_id, Delivery.retry_at.is_not(None)
    )
    count, first = session.execute(query).one()
    return count, first
