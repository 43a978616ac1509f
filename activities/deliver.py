"""Delivering messages: decide, claim, render, send, record — once per idempotency key.

One core serves both a journey step (`deliver`, one message) and a broadcast
page (`deliver_batch`, up to a thousand), so both keep the same guarantees:

1. In one transaction holding the contacts' locks (`FOR UPDATE` on PostgreSQL;
   SQLite transactions begin IMMEDIATE), the policy decides for each message
   over the contact's preferences, suppressions and counted deliveries, and
   the row for its idempotency key is written: `skipped`, `deferred`, or
   `sending` with its `sent_at`, which claims the message's place in the caps
   at once. Fifty racing journeys see each other's claims; a cap of 2 lets 2 through.
2. Outside the lock the claimed messages are rendered and handed to the provider.
3. One transaction records what happened, appending to each row's history in
   SQL rather than reading it back: `sent` with the provider's id, `failed` (a
   broken template), back to `reserved` when the provider answered that it did not
   take it (the message is known not to be out, so it no longer counts), or
   `uncertain` when the request went out and no answer came (a read timeout, a
   reset after sending): marketing is never sent again; transactional and care are
   sent once more, after RESEND_UNCERTAIN_AFTER, both attempts in the history.

A row already final is returned as recorded. A claim is a lease: the `sending`
row's `retry_at` says until when the attempt may hand it over (DELIVER_TIMEOUT,
plus twice what the send rates need for a page), and no attempt hands over past
its lease or its own deadline. A `sending` row whose lease is over means a crash
between handing the message over and recording it: nobody can know whether the
provider took it, so it is resolved by category (transactional and care: send
again, under a new lease; marketing: `uncertain`) unless the provider is
idempotent. A row still under lease belongs to a live attempt: this one is
retried later (ConcurrentAttempt).
"""

from __future__ import annotations

import logging
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from email.utils import parseaddr
from typing import Any

from sqlalchemy import bindparam, case, insert, select, text, update
from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from carecast.channels.base import OutboundMessage, Provider, ProviderError, ProviderReceipt
from carecast.channels.handover import hand_over
from carecast.channels.router import unconfigured_channels
from carecast.channels.scrub import scrub
from carecast.contacts.suppressions import add_suppression
from carecast.contacts.views import contact_facts, contact_view, frequency_limit, preference_view
from carecast.policy.decide import decide
from carecast.policy.decision import Defer, Send, Skip
from carecast.policy.frequency import count_window
from carecast.policy.model import EmailIdentity, HouseRules, Message, SentDelivery, rules_source
from carecast.policy.timezones import contact_zone
from carecast.render.bundles import BundleTemplates
from carecast.render.context import template_context
from carecast.render.links import LinkSigner
from carecast.render.templates import TemplateError, TemplateRenderer
from carecast.store.campaigns import RecentStates
from carecast.store.expressions import json_append, one_of
from carecast.store.models import Contact, Delivery, Event, Preferences, Suppression, utcnow
from carecast.store.pacing import take
from carecast.store.types import JsonDocument
from carecast.store.writes import bulk_insert, lock_contact_rows
from workflows.journey.contract import DELIVER, DELIVER_TIMEOUT, DeliverInput, DeliverResult

# What providers report after `sent` (carecast.feedback); all of them are past the hand-over.
FEEDBACK = {"delivered", "bounced", "dropped", "undelivered", "not_answered"}
FINAL = {"sent", "skipped", "failed", "uncertain", "holdout"} | FEEDBACK
# Rows that never reached a provider do not count toward caps.
NOT_COUNTED = ("reserved", "deferred", "skipped", "failed", "holdout")
RESEND_AFTER_UNCERTAINTY = {"transactional", "care"}
# An uncertain transactional or care message is sent once more, this long after (the provider may be
# struggling); `uncertain` with this reason is the one state a row leaves FINAL for.
RESEND_UNCERTAIN_AFTER = timedelta(minutes=2)
RESEND_DUE = "no_answer_resend_due"
# An attempt starts no hand-over later than this before its own start-to-close deadline, so that one begun
# in time (CARECAST_PROVIDER_TIMEOUT, 10 s by default, must stay below it) ends before a retry may begin.
HANDOVER_MARGIN = timedelta(seconds=15)
# A batch records what its hand-overs came to at least this often: what a crash leaves in doubt.
RECORD_EVERY = timedelta(seconds=0.5)
# Refused credentials: tried again after 30 s, 1 min, 2 min, … at most every 15 minutes, until the hold deadline.
AUTH_RETRY_FIRST, AUTH_RETRY_MOST = timedelta(seconds=30), timedelta(minutes=15)
# A 429 or 5xx without Retry-After, in a broadcast (a journey's step follows Temporal's retry policy).
PROVIDER_RETRY_FIRST, PROVIDER_RETRY_MOST = timedelta(seconds=10), timedelta(minutes=15)
ONE_CLICK_CATEGORIES = {"marketing", "care"}
# How the address is suppressed when a provider says it cannot or must not receive messages.
SUPPRESSION_REASONS = {"invalid_address": "invalid_address", "unsubscribed": "stop"}
ERROR_TYPES = {"temporary": "ProviderUnavailable", "rejected": "ProviderRejected", "auth": "ProviderAuthFailed"}
# A message that waited its whole hold for the operator's fix fails with the reason of what it waited for.
WAITED_FOR = {"auth": "provider_auth_failed", "unconfigured": "provider_not_configured"}

log = logging.getLogger("carecast.deliver")

Outcome = DeliverResult | ApplicationError


def _history(status: str, **details: Any) -> dict[str, Any]:
    return {"status": status, "at": utcnow().isoformat(), **{k: v for k, v in details.items() if v is not None}}


@dataclass(eq=False)
class _Row:
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


ROW_COLUMNS = (Delivery.id, Delivery.idempotency_key, Delivery.status, Delivery.reason, Delivery.channel,
               Delivery.sent_at, Delivery.retry_at, Delivery.status_history)  # fmt: skip


def _loaded(row) -> _Row:
    return _Row(row.idempotency_key, row.status, row.id, row.reason, row.channel, row.sent_at, row.retry_at,
                list(row.status_history or []))  # fmt: skip


def _record(row: _Row, status: str, reason: str | None = None, retry_at: datetime | None = None, **details) -> None:
    """A new status for the row; `retry_at` when it waits to be tried again (cleared otherwise)."""
    row.status = status
    row.reason = reason
    row.retry_at = retry_at
    row.status_history = [*row.status_history, _history(status, reason=reason, **details)]
    row.changed = True


def _attempt_left() -> timedelta:
    """How long this attempt may still begin a hand-over: to its start-to-close deadline, less HANDOVER_MARGIN."""
    if not activity.in_activity():
        return DELIVER_TIMEOUT
    info = activity.info()
    if info.start_to_close_timeout is None:
        return DELIVER_TIMEOUT
    deadline = info.started_time + info.start_to_close_timeout
    return max(deadline - utcnow() - HANDOVER_MARGIN, timedelta(0))


def _lease(channels: Sequence[str], rules: HouseRules) -> timedelta:
    """How long claimed messages are one attempt's: DELIVER_TIMEOUT, plus twice what their send rates need
    (pages running side by side share each channel's rate), so a slow voice page is not cut short."""
    pacing = sum(n / rules.send_rates[c] for c, n in Counter(channels).items() if rules.send_rates.get(c))
    return DELIVER_TIMEOUT + 2 * timedelta(seconds=pacing)


def _resend_under_way(row: _Row) -> bool:
    """Whether the row's current hand-over is already its one resend."""
    return bool(next((e for e in reversed(row.status_history) if e.get("status") == "sending"), {}).get("resend"))


def _was_uncertain(row: _Row) -> bool:
    return any(entry.get("status") == "uncertain" for entry in row.status_history)


def _result(row: _Row) -> DeliverResult:
    return DeliverResult(delivery_id=row.id, status=row.status, channel=row.channel, reason=row.reason)


def _busy(row: _Row) -> ApplicationError:
    return ApplicationError(f"delivery {row.id} is being sent by another attempt", type="ConcurrentAttempt")


def _write(session: Session, rows: Iterable[_Row]) -> None:
    """Inserts the new rows (learning their ids) and updates the changed ones, a statement each."""
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
    for r in rows:
        r.changed = False


NEXT_DELIVERY_IDS = text("SELECT nextval(pg_get_serial_sequence('deliveries', 'id')) FROM generate_series(1, :n)")


def _insert_values(row: _Row, now: datetime) -> dict[str, Any]:
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


def _update_values(row: _Row) -> dict:
    return dict(b_id=row.id, b_status=row.status, b_reason=row.reason, b_channel=row.channel, b_sent_at=row.sent_at,
                b_retry_at=row.retry_at, b_history=row.status_history, b_updated_at=utcnow())  # fmt: skip


@dataclass
class _Claimed:
    index: int
    delivery_id: int
    message: OutboundMessage
    category: str
    resend: bool = False  # the second and last attempt of a message the provider left uncertain
    refusals: int = 0  # how often a provider refused it for now before (429, 5xx, a refused key): the backoff


# A provider's callback may have come before the record (its news is newer than "sent"): a
# row no longer `sending` keeps its status, and the hand-over still joins its history.
RECORD_SENT = (
    update(Delivery.__table__)
    .where(Delivery.id == bindparam("b_id"))
    .values(
        status=case((Delivery.status == "sending", "sent"), else_=Delivery.status), retry_at=None,
        status_history=json_append(Delivery.status_history, bindparam("b_entry", type_=JsonDocument)),
        provider=bindparam("b_provider"), provider_message_id=bindparam("b_message_id"),
        segments=bindparam("b_segments"), updated_at=bindparam("b_updated_at"),
    )
)  # fmt: skip
RECORD_NOT_SENT = (
    update(Delivery.__table__)
    .where(Delivery.id == bindparam("b_id"))
    .values(
        status=bindparam("b_status"), reason=bindparam("b_reason"), sent_at=None, retry_at=bindparam("b_retry_at"),
        status_history=json_append(Delivery.status_history, bindparam("b_entry", type_=JsonDocument)),
        updated_at=bindparam("b_updated_at"),
    )
)  # fmt: skip


def _sent(claim: _Claimed, receipt: ProviderReceipt) -> dict[str, Any]:
    return dict(b_id=claim.delivery_id, b_entry=_history("sent", channel=claim.message.channel),
                b_provider=receipt.provider, b_message_id=receipt.message_id, b_segments=receipt.segments,
                b_updated_at=utcnow())  # fmt: skip


# No answer after the request went out: it may be out, so it keeps its sent_at and counts toward caps.
RECORD_UNCERTAIN = (
    update(Delivery.__table__)
    .where(Delivery.id == bindparam("b_id"), Delivery.status == "sending")
    .values(
        status="uncertain", reason=bindparam("b_reason"), retry_at=bindparam("b_retry_at"),
        status_history=json_append(Delivery.status_history, bindparam("b_entry", type_=JsonDocument)),
        updated_at=bindparam("b_updated_at"),
    )
)  # fmt: skip


def _uncertain(claim: _Claimed, reason: str, error: str, retry_at: datetime | None) -> dict[str, Any]:
    return dict(b_id=claim.delivery_id, b_reason=reason, b_retry_at=retry_at, b_updated_at=utcnow(),
                b_entry=_history("uncertain", reason=reason, channel=claim.message.channel, error=error))  # fmt: skip


def _not_sent(claim: _Claimed, status: str, reason: str | None, retry_at: datetime | None = None,
              **details: Any) -> dict[str, Any]:  # fmt: skip
    return dict(b_id=claim.delivery_id, b_status=status, b_reason=reason, b_retry_at=retry_at,
                b_entry=_history(status, reason=reason, **details), b_updated_at=utcnow())  # fmt: skip


class DeliveryActivities:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        renderer: TemplateRenderer,
        provider: Provider,
        house_rules: HouseRules | Callable[[], HouseRules],
        links: LinkSigner,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.sessions = sessions
        self.rules = rules_source(house_rules)
        self.bundles = BundleTemplates(sessions, renderer, lambda: self.rules().email)
        self.campaign_states = RecentStates()
        self.provider = provider
        self.links = links
        self.clock = clock

    @activity.defn(name=DELIVER)
    def deliver(self, request: DeliverInput) -> DeliverResult:
        [outcome] = self.deliver_batch([request])
        if isinstance(outcome, ApplicationError):
            raise outcome
        return outcome

    def deliver_batch(self, requests: Sequence[DeliverInput]) -> list[Outcome]:
        """One outcome per request, in order: its result, or the error to raise for it."""
        outcomes: list[Outcome | None] = [None] * len(requests)
        # The house rules now, once for the batch: a limit tightened by a deploy applies to the next message.
        rules = self.rules()
        attempt_ends = self.clock() + _attempt_left()
        claimed, lease_ends = self._claim_all(requests, outcomes, rules)
        # Other attempts take a claimed message once its lease is over: no hand-over after that (less the
        # margin), nor after this attempt's own deadline.
        hand_over_by = min(attempt_ends, lease_ends - HANDOVER_MARGIN)
        unconfigured = {o.message for o in outcomes if getattr(o, "type", None) == "ProviderNotConfigured"}
        for error in sorted(unconfigured):
            log.error("%s — messages that only it may carry wait until this is fixed", error)
        if claimed:
            self._send_all(claimed, outcomes, rules, hand_over_by)
        return outcomes  # type: ignore[return-value]

    # 1. decide and claim, under the contacts' locks

    def _claim_all(
        self, requests: Sequence[DeliverInput], outcomes: list, rules: HouseRules
    ) -> tuple[list[_Claimed], datetime]:
        """The messages this attempt claimed (rendered, or the render's error), and when its lease on them ends."""
        contact_ids = sorted({r.contact_id for r in requests})
        claims: list[tuple[int, _Row, Contact, Send]] = []
        with self.sessions.begin() as session:
            # Lock in id order (no deadlock between two batches), then read the clock: a send that
            # committed while we waited must lie in the past of `now`, or caps would miss it.
            contacts = lock_contact_rows(session, contact_ids)
            now = max([self.clock(), *(r.asked_at for r in requests if r.asked_at)])
            keys = [r.idempotency_key for r in requests]
            rows = {
                r.idempotency_key: _loaded(r)
                for r in session.execute(select(*ROW_COLUMNS).where(one_of(session, Delivery.idempotency_key, keys)))
            }
            table = Preferences.__table__
            prefs = {
                p.contact_id: p
                for p in session.execute(select(table).where(one_of(session, table.c.contact_id, contact_ids)))
            }
            suppressed = self._suppressed(session, contacts.values())
            # Read back as far as the longest cap needs, the house's or a contact's own ("2 per 90d").
            window = count_window([*rules.caps, *(frequency_limit(p) for p in prefs.values())])
            counted = self._counted(session, contact_ids, now, window)
            holds = {c: self.campaign_states.get(session, c) for c in {r.campaign_id for r in requests}}
            for index, request in enumerate(requests):
                row = rows.get(request.idempotency_key)
                if row is None:
                    row = rows[request.idempotency_key] = self._new_row(request)
                contact = contacts.get(request.contact_id)
                decision = self._decide(request, row, contact, prefs, suppressed, counted, holds, rules, now)
                if isinstance(decision, Send):
                    # A second hand-over of a message that may be out already (left uncertain, or by a crashed
                    # attempt): whatever comes of it, there is no third.
                    resend = row.status in ("uncertain", "sending") or _was_uncertain(row)
                    if row.status != "sending":
                        if row.status != "uncertain":  # an uncertain row counts already
                            counted[request.contact_id].append(SentDelivery(now, request.category, decision.channel))
                        row.channel, row.sent_at = decision.channel, now  # _record marks it changed
                        _record(row, "sending", channel=decision.channel, resend=resend or None)
                    else:  # taken over from an attempt that died mid-send: its history shows the second hand-over
                        _record(row, "sending", channel=row.channel, resend=True)
                    claims.append((index, row, contact, decision, resend))
                else:
                    outcomes[index] = decision
            lease_ends = now + _lease([decision.channel for *_, decision, _ in claims], rules)
            for _, row, *_ in claims:
                row.retry_at, row.changed = lease_ends, True  # a `sending` row's retry_at is the end of its lease
            _write(session, rows.values())  # and the new rows learn their ids
        for index, outcome in enumerate(outcomes):
            if isinstance(outcome, _Pending):
                outcomes[index] = outcome.resolve()
        # Rendering needs no lock: the claims are committed, and other batches may go on meanwhile.
        events = self._events([requests[i] for i, *_ in claims])
        facts = {contact.id: contact_facts(contact) for _, _, contact, *_ in claims}
        return [
            _Claimed(
                index,
                row.id,
                self._render_or_fail(requests[index], row.id, facts[contact.id], decision, events),
                requests[index].category,
                resend,
                refusals=sum(1 for entry in row.status_history if entry.get("kind")),
            )
            for index, row, contact, decision, resend in claims
        ], lease_ends

    @staticmethod
    def _new_row(request: DeliverInput) -> _Row:
        columns = dict(
            workflow_id=request.workflow_id,
            campaign_id=request.campaign_id,
            campaign_version=request.campaign_version,
            category=request.category,
            step_id=request.step_id,
            contact_id=request.contact_id,
            template=request.template,
        )
        return _Row(request.idempotency_key, "reserved", status_history=[_history("reserved")], columns=columns)

    def _decide(self, request, row, contact, prefs, suppressed, counted, holds, rules, now) -> _Pending | Send:
        """What happens to one message: a Send to claim, or an outcome that is already settled."""
        if row.status == "uncertain" and row.reason == RESEND_DUE:
            return self._resend(request, row, contact, prefs, suppressed, holds, rules, now, left_as="no_answer")
        if row.status in FINAL:
            return _Pending(row, None)
        if row.status == "sending":
            if now < (row.retry_at or row.sent_at + DELIVER_TIMEOUT):  # rows claimed before leases: a minute
                return _Pending(row, _busy(row))  # a live attempt is sending it right now
            no_resend = request.category not in RESEND_AFTER_UNCERTAINTY or _resend_under_way(row)
            if no_resend and not self.provider.idempotent:  # marketing, or the one resend may be out already
                _record(row, "uncertain", reason="crashed_while_sending")
                return _Pending(row, None)
            left_as = "crashed_while_sending"
            return self._resend(request, row, contact, prefs, suppressed, holds, rules, now, left_as=left_as)
        if request.holdout:
            _record(row, "holdout", reason="holdout")
            return _Pending(row, None)
        if contact is None:
            _record(row, "skipped", reason="unknown_contact")
            return _Pending(row, None)
        message = self._message(request, holds.get(request.campaign_id))
        facts = (contact_view(contact), preference_view(prefs.get(contact.id)), suppressed, counted[contact.id], rules)
        decision = decide(message, *facts, now)
        missing = unconfigured_channels(self.provider)
        if isinstance(decision, Send) and decision.channel in missing:
            # Passed over as a channel without consent is; if no other channel may carry it, it waits for the fix.
            usable = tuple(c for c in message.channels if c not in missing)
            other = decide(replace(message, channels=usable), *facts, now) if usable else None
            if other is None or isinstance(other, Skip):
                return self._await_configuration(row, decision.channel, missing[decision.channel], now)
            decision = other
        if isinstance(decision, Skip):
            waited_for = next(
                (WAITED_FOR[e["kind"]] for e in reversed(row.status_history) if e.get("kind") in WAITED_FOR), None
            )
            if decision.reason == "expired" and waited_for:
                _record(row, "failed", reason=waited_for)  # it waited its whole hold for a fix
            else:
                _record(row, "skipped", reason=decision.reason)
            return _Pending(row, None)
        if isinstance(decision, Defer):
            _record(row, "deferred", decision.reason, decision.until, until=decision.until.isoformat())
            return _Pending(row, None, deferred=self._deferred_result(decision, contact, now, rules))
        return decision

    @staticmethod
    def _await_configuration(row: _Row, channel: str, setting: str, now: datetime) -> _Pending:
        """No configured provider may carry the message: it waits, as for a refused key, until its hold deadline."""
        error = f"no provider is configured for {channel}: set {setting}"
        delay = _backoff(AUTH_RETRY_FIRST, AUTH_RETRY_MOST, sum(1 for entry in row.status_history if entry.get("kind")))
        _record(row, "reserved", None, now + delay, error=error, kind="unconfigured")
        return _Pending(row, ApplicationError(error, type="ProviderNotConfigured", next_retry_delay=delay))

    def _resend(self, request, row, contact, prefs, suppressed, holds, rules, now, left_as: str) -> _Pending | Send:
        """The one resend of a message that may be out already, if the policy still lets it go now.

        Asked on the row's own channel: a STOP, a withdrawn consent, a suppression or the
        campaign's stop since then withholds it for good (the row stays uncertain, as `left_as`);
        quiet hours or a pause defer it. Caps are not asked: the message counts already.
        """
        if contact is None:
            _record(row, "uncertain", reason=left_as, withheld="unknown_contact")
            return _Pending(row, None)
        message = replace(self._message(request, holds.get(request.campaign_id)), channels=(row.channel,))
        decision = decide(message, contact_view(contact), preference_view(prefs.get(contact.id)), suppressed, (),
                          rules, now)  # fmt: skip
        if isinstance(decision, Skip):
            _record(row, "uncertain", reason=left_as, withheld=decision.reason)
            return _Pending(row, None)
        if isinstance(decision, Defer):
            _record(row, "uncertain", RESEND_DUE, decision.until, until=decision.until.isoformat())
            deferred = self._deferred_result(decision, contact, now, rules) | {"reason": decision.reason}
            return _Pending(row, None, deferred=deferred)
        return decision

    def _message(self, request: DeliverInput, hold: str | None) -> Message:
        max_hold = timedelta(seconds=request.max_hold_seconds) if request.max_hold_seconds else None
        return Message(
            category=request.category,  # type: ignore[arg-type]
            channels=tuple(request.channels),
            topic=request.topic,
            urgent=request.urgent,
            on_cap=request.on_cap,  # type: ignore[arg-type]
            held_since=request.held_since,
            max_hold=max_hold,
            campaign_hold=hold if hold in ("paused", "stopped") else None,  # type: ignore[arg-type]
        )

    @staticmethod
    def _address(contact: Contact, channel: str) -> str:
        return contact.email if channel == "email" else contact.phone

    @staticmethod
    def _suppressed(session: Session, contacts) -> set[tuple[str, str]]:
        addresses = sorted({a for c in contacts for a in (c.email, c.phone) if a})
        if not addresses:
            return set()
        rows = session.execute(
            select(Suppression.channel, Suppression.address).where(one_of(session, Suppression.address, addresses))
        )
        return {(channel, address) for channel, address in rows}

    @staticmethod
    def _counted(
        session: Session, contact_ids: list[str], now: datetime, window: timedelta
    ) -> dict[str, list[SentDelivery]]:
        counted: dict[str, list[SentDelivery]] = defaultdict(list)
        rows = session.execute(
            select(Delivery.contact_id, Delivery.sent_at, Delivery.category, Delivery.channel).where(
                one_of(session, Delivery.contact_id, contact_ids),
                Delivery.sent_at > now - window,
                Delivery.status.not_in(NOT_COUNTED),
            )
        )
        for contact_id, at, category, channel in rows:
            counted[contact_id].append(SentDelivery(at=at, category=category, channel=channel))
        return counted

    @staticmethod
    def _deferred_result(decision: Defer, contact: Contact, now: datetime, rules: HouseRules):
        tz = contact_zone(contact.timezone, contact.phone, rules.default_timezone)
        local = decision.until.astimezone(tz)
        when = f"{local:%H:%M}" if local.date() == now.astimezone(tz).date() else f"{local:%a %d %b %H:%M}"
        return dict(deferred_until=decision.until, deferred_until_local=f"{when} {tz.key}")

    # 2. render and send, outside the lock

    def _events(self, requests: Sequence[DeliverInput]) -> dict[str, dict]:
        """The data of the events that triggered these messages (none for a broadcast)."""
        ids = sorted({r.trigger_event_id for r in requests if r.trigger_event_id})
        if not ids:
            return {}
        with self.sessions() as session:
            query = select(Event.event_id, Event.data).where(one_of(session, Event.event_id, ids))
            return dict(session.execute(query).all())

    def _render_or_fail(
        self, request: DeliverInput, delivery_id: int, contact: dict, decision: Send, events: dict
    ) -> OutboundMessage | TemplateError:
        renderer, identity = self.bundles.of(request.campaign_id, request.bundle)
        context = template_context(
            contact,
            events.get(request.trigger_event_id),
            request.campaign_id,
            request.campaign_name,
            request.topic,
            self.links,
            identity.postal_address,
        )
        try:
            if decision.channel == "email":
                email = renderer.render_email(request.template, context, contact["locale"])
                subject, text, html = email.subject, email.text, email.html
            else:
                subject, html = None, None
                text = renderer.render_part(request.template, decision.channel, context, contact["locale"])
        except TemplateError as exc:
            return exc
        return OutboundMessage(
            delivery_id=delivery_id,
            channel=decision.channel,  # type: ignore[arg-type]
            to=decision.address,
            contact_id=contact["id"],
            campaign_id=request.campaign_id,
            subject=subject,
            text=text,
            html=html,
            sender=request.sender or identity.sender,
            reply_to=request.reply_to or identity.reply_to,
            category=request.category,
            locale=contact["locale"],
            headers=self._unsubscribe_headers(request, context["unsubscribe_url"], decision.channel, identity),
        )

    @staticmethod
    def _unsubscribe_headers(request: DeliverInput, url: str, channel: str, identity: EmailIdentity) -> dict[str, str]:
        """RFC 2369 / RFC 8058 one-click unsubscribe, on every marketing and care email."""
        if channel != "email" or request.category not in ONE_CLICK_CATEGORIES:
            return {}
        links = [f"<{url}>"]
        if mailto := identity.unsubscribe_mailto:
            token = url.rsplit("/", 1)[-1]
            links.append(f"<mailto:{parseaddr(mailto)[1]}?subject=unsubscribe%20{token}>")
        return {"List-Unsubscribe": ", ".join(links), "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}

    def _paced_chunks(self, claimed: list[_Claimed], rules: HouseRules):
        """The claimed messages in chunks of a tenth of a second's rate, each after its tokens are taken."""
        rendered = [c for c in claimed if isinstance(c.message, OutboundMessage)]
        # Failed renders go straight to recording; they reach no provider and take no tokens.
        unpaced = [
            c
            for c in claimed
            if not isinstance(c.message, OutboundMessage) or c.message.channel not in rules.send_rates
        ]
        if unpaced:
            yield unpaced
        for channel, rate in rules.send_rates.items():
            messages = [c for c in rendered if c.message.channel == channel]
            size = max(1, int(rate / 10))
            for start in range(0, len(messages), size):
                chunk = messages[start : start + size]
                with self.sessions.begin() as session:
                    wait = take(session, channel, len(chunk), rate, utcnow())
                if wait > 0:
                    time.sleep(wait)
                yield chunk

    def _send_all(self, claimed: list[_Claimed], outcomes: list, rules: HouseRules, hand_over_by: datetime) -> None:
        """Hands the claimed messages over chunk by chunk and records what happened at least every RECORD_EVERY,
        so a worker that dies in the middle of a page leaves only its last unrecorded chunks in doubt."""
        handed: list[tuple[_Claimed, ProviderReceipt | Exception]] = []
        done, recorded_at = 0, time.monotonic()
        for chunk in self._paced_chunks(claimed, rules):
            sendable = [c for c in chunk if isinstance(c.message, OutboundMessage)]
            if self.clock() >= hand_over_by:
                # Past the attempt's deadline a retry may already be sending these: hand nothing over.
                late = ProviderError("the attempt ran out of time before the hand-over")
                answers: list = [late] * len(sendable)
            else:
                answers = hand_over(self.provider, [c.message for c in sendable])
            handed += zip(sendable, answers, strict=True)
            handed += [(c, c.message) for c in chunk if isinstance(c.message, TemplateError)]  # reached no provider
            done += len(chunk)
            if len(claimed) > 1 and activity.in_activity():
                # A page tells Temporal it is alive. A journey's single message does not: a
                # heartbeat from an activity thread waits for the worker's event loop.
                activity.heartbeat(done)
            if time.monotonic() - recorded_at >= RECORD_EVERY.total_seconds():
                self._record_handed(handed, outcomes)
                handed, recorded_at = [], time.monotonic()
        if handed:
            self._record_handed(handed, outcomes)

    def _record_handed(self, handed: list[tuple[_Claimed, ProviderReceipt | Exception]], outcomes: list) -> None:
        """3. records what happened, in one transaction, without reading the rows back."""
        sent, not_sent, uncertain = [], [], []
        with self.sessions.begin() as session:
            for claim, outcome in handed:
                if isinstance(outcome, ProviderError) and outcome.kind == "uncertain":
                    record, outcomes[claim.index] = self._uncertain(claim, outcome)
                    uncertain.append(record)
                elif isinstance(outcome, TemplateError):
                    # A broken template will not mend itself on retry; the operator must see it.
                    not_sent.append(_not_sent(claim, "failed", "template_error", error=str(outcome)))
                    outcomes[claim.index] = ApplicationError(str(outcome), non_retryable=True, type="TemplateError")
                elif isinstance(outcome, ProviderError):
                    failure, retry_at = self._provider_failure(session, claim, outcome)
                    error, kind = str(outcome), outcome.kind
                    if failure.non_retryable:  # refused as it is: trying again would not change the answer
                        not_sent.append(_not_sent(claim, "failed", "provider_rejected", error=error, kind=kind))
                    else:  # known not to be out: back to reserved, and it no longer counts toward caps
                        not_sent.append(_not_sent(claim, "reserved", None, retry_at, error=error, kind=kind))
                    outcomes[claim.index] = failure
                else:
                    sent.append(_sent(claim, outcome))
                    channel = claim.message.channel
                    outcomes[claim.index] = DeliverResult(delivery_id=claim.delivery_id, status="sent", channel=channel)
            if sent:
                session.execute(RECORD_SENT, sent)
            if not_sent:
                session.execute(RECORD_NOT_SENT, not_sent)
            if uncertain:
                session.execute(RECORD_UNCERTAIN, uncertain)

    def _uncertain(self, claim: _Claimed, error: ProviderError) -> tuple[dict[str, Any], Outcome]:
        """No answer after the request went out: resent once if it must arrive, never if it is marketing."""
        said = scrub(str(error), claim.message.to)  # for Temporal; the store keeps the provider's own words
        if claim.category in RESEND_AFTER_UNCERTAINTY and not claim.resend and not self.provider.idempotent:
            delay = RESEND_UNCERTAIN_AFTER
            record = _uncertain(claim, RESEND_DUE, str(error), self.clock() + delay)
            return record, ApplicationError(said, type="ProviderUncertain", next_retry_delay=delay)
        record = _uncertain(claim, "no_answer", str(error), None)
        return record, DeliverResult(
            delivery_id=claim.delivery_id, status="uncertain", channel=claim.message.channel, reason="no_answer"
        )

    def _provider_failure(
        self, session: Session, claim: _Claimed, error: ProviderError
    ) -> tuple[ApplicationError, datetime | None]:
        """What Temporal does about a provider's refusal, and when the message may be tried again.

        A refused address is suppressed first; with it suppressed, the retry asks the policy
        again: it picks the step's next channel (an email after a STOP by SMS) or skips the
        message as suppressed. A journey's step is retried by Temporal; a broadcast's retry
        pass takes the message again at its `retry_at`.
        """
        message = claim.message
        said = scrub(str(error), message.to)  # Temporal keeps failures in the history: no addresses there
        now = self.clock()
        if error.kind in SUPPRESSION_REASONS:
            reason = SUPPRESSION_REASONS[error.kind]
            add_suppression(session, message.channel, message.to, reason, f"provider:{error.kind}")
            again = timedelta(seconds=1)
            return ApplicationError(said, type="AddressRefused", next_retry_delay=again), now + again
        if error.kind == "auth":
            # A configuration slip waits to be fixed rather than lose the message: retried with a capped
            # backoff until the message's hold deadline (its max_hold), then failed with this reason.
            attempt = activity.info().attempt if activity.in_activity() else 1
            delay = _backoff(AUTH_RETRY_FIRST, AUTH_RETRY_MOST, max(attempt - 1, claim.refusals))
            log.error("%s — messages on this channel wait (next try in %s) until this is fixed", said, delay)
            return ApplicationError(said, type=ERROR_TYPES["auth"], next_retry_delay=delay), now + delay
        if not error.retryable:
            return ApplicationError(said, non_retryable=True, type=ERROR_TYPES[error.kind]), None
        told = timedelta(seconds=error.retry_after) if error.retry_after else None
        delay = told or _backoff(PROVIDER_RETRY_FIRST, PROVIDER_RETRY_MOST, claim.refusals)
        return ApplicationError(said, type=ERROR_TYPES[error.kind], next_retry_delay=told), now + delay


def _backoff(first: timedelta, most: timedelta, tries_before: int) -> timedelta:
    return min(first * 2 ** min(tries_before, 10), most)


@dataclass
class _Pending:
    """An outcome settled during the claim, read once the new rows have their ids."""

    row: _Row
    error: ApplicationError | None
    deferred: dict | None = None

    def resolve(self) -> Outcome:
        if self.error is not None:
            return self.error
        result = _result(self.row)
        if self.deferred:
            result = DeliverResult(**{**result.__dict__, "status": "deferred", **self.deferred})
        return result
