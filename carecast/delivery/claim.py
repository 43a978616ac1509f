"""What becomes of each message, decided under its contact's lock: send it (claim it), or settle it now.

`Claim.decide` reads a message's ledger row and asks the policy over what the batch
read under the lock (contacts, preferences, suppressions, counted sends, campaign holds);
it returns a `Send` to claim, or a `Settled` outcome (already recorded, skipped, deferred,
held by a live attempt, waiting for a provider to be configured).

A row already final is returned as recorded. A `sending` row belongs to a live attempt
until its lease (`retry_at`) ends; after that the attempt died between handing the
message over and recording it, and nobody can know whether the provider took it:
marketing is left `uncertain`, transactional and care get their one resend (unless the
hand-over that died was that resend), unless the provider is idempotent. The one resend
of an uncertain message asks the policy again on its own channel.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session
from temporalio.exceptions import ApplicationError

from carecast.contacts.views import contact_view, frequency_limit, preference_view
from carecast.delivery.answers import AUTH_RETRY_FIRST, AUTH_RETRY_MOST, RESEND_AFTER_UNCERTAINTY, RESEND_DUE, backoff
from carecast.delivery.ledger import CLAIMED, FINAL, Row, Status, counted, move
from carecast.policy.decide import decide
from carecast.policy.decision import Defer, Send, Skip
from carecast.policy.frequency import count_window
from carecast.policy.model import HouseRules, Message, SentDelivery
from carecast.policy.timezones import contact_zone
from carecast.store.expressions import one_of
from carecast.store.models import Contact, Preferences, Suppression
from workflows.journey.contract import DELIVER_TIMEOUT, DeliverInput, DeliverResult

# A message that waited its whole hold for the operator's fix fails with the reason of what it waited for.
WAITED_FOR = {"auth": "provider_auth_failed", "unconfigured": "provider_not_configured"}

Outcome = DeliverResult | ApplicationError


@dataclass
class Settled:
    """An outcome settled during the claim, read once the new rows have their ids."""

    row: Row
    error: ApplicationError | None = None
    deferred: dict | None = None

    def outcome(self) -> Outcome:
        if self.error is not None:
            return self.error
        row = self.row
        result = DeliverResult(delivery_id=row.id, status=row.status, channel=row.channel, reason=row.reason)
        if self.deferred:
            result = DeliverResult(**{**result.__dict__, "status": Status.DEFERRED.value, **self.deferred})
        return result


@dataclass(frozen=True)
class Facts:
    """What the batch read under the contacts' locks, and the moment it decides at."""

    contacts: Mapping[str, Contact]
    preferences: Mapping[str, Preferences]
    suppressed: set[tuple[str, str]]
    counted: Mapping[str, list[SentDelivery]]
    holds: Mapping[str, str | None]  # campaign id -> an operator's hold on it
    rules: HouseRules
    now: datetime
    unconfigured: Mapping[str, str]  # channel -> the setting that would give it a provider
    idempotent: bool  # the provider may be handed a message twice without sending it twice


@dataclass(frozen=True)
class ContactReads:
    """What the policy needs of a batch of contacts beyond their rows: choices, suppressions, recent sends."""

    preferences: Mapping[str, Preferences]
    suppressed: set[tuple[str, str]]
    counted: Mapping[str, list[SentDelivery]]


def read_for_policy(
    session: Session, contacts: Mapping[str, Contact], contact_ids: list[str], rules: HouseRules, now: datetime
) -> ContactReads:
    """Three queries for the whole batch (the deliver activity's claim, and `carecast audience`)."""
    table = Preferences.__table__
    preferences = {
        p.contact_id: p for p in session.execute(select(table).where(one_of(session, table.c.contact_id, contact_ids)))
    }
    # Read back as far as the longest cap needs, the house's or a contact's own ("2 per 90d").
    window = count_window([*rules.caps, *(frequency_limit(p) for p in preferences.values())])
    return ContactReads(
        preferences=preferences,
        suppressed=suppressed_addresses(session, contacts.values()),
        counted=counted(session, contact_ids, now, window),
    )


def suppressed_addresses(session: Session, contacts) -> set[tuple[str, str]]:
    addresses = sorted({a for c in contacts for a in (c.email, c.phone) if a})
    if not addresses:
        return set()
    rows = session.execute(
        select(Suppression.channel, Suppression.address).where(one_of(session, Suppression.address, addresses))
    )
    return {(channel, address) for channel, address in rows}


def decide_message(request: DeliverInput, row: Row, facts: Facts) -> Send | Settled:
    """A Send to claim, or the message's settled outcome (its row moved in memory)."""
    contact = facts.contacts.get(request.contact_id)
    if _not_due_yet(row, facts.now):
        wait = row.retry_at - facts.now
        return Settled(row, ApplicationError(f"delivery {row.id} may be tried again in {wait}", type="NotDueYet",
                                             next_retry_delay=wait))  # fmt: skip
    if row.status == Status.UNCERTAIN and row.reason == RESEND_DUE:
        return _resend(request, row, contact, facts, left_as="no_answer")
    if row.status in FINAL:
        return Settled(row)
    if row.status == Status.SENDING:
        if facts.now < (row.retry_at or row.sent_at + DELIVER_TIMEOUT):  # rows claimed before leases: a minute
            return Settled(row, ApplicationError(f"delivery {row.id} is being sent by another attempt",
                                                 type="ConcurrentAttempt"))  # fmt: skip
        if row.reason == CLAIMED:  # its attempt died before handing it over: it never left
            move(row, Status.RESERVED, "attempt_died_before_hand_over")
            _uncount(facts, request.contact_id, row.sent_at)
        else:
            no_resend = request.category not in RESEND_AFTER_UNCERTAINTY or row.resend_under_way
            if no_resend and not facts.idempotent:  # marketing, or the one resend may be out already
                move(row, Status.UNCERTAIN, "crashed_while_sending")
                return Settled(row)
            return _resend(request, row, contact, facts, left_as="crashed_while_sending")
    if request.holdout:
        move(row, Status.HOLDOUT, "holdout")
        return Settled(row)
    if contact is None:
        move(row, Status.SKIPPED, "unknown_contact")
        return Settled(row)
    message = _message(request, facts.holds.get(request.campaign_id))
    decision = _ask(message, contact, facts)
    if isinstance(decision, Send) and decision.channel in facts.unconfigured:
        # Passed over as a channel without consent is; if no other channel may carry it, it waits for the fix.
        usable = tuple(c for c in message.channels if c not in facts.unconfigured)
        other = _ask(replace(message, channels=usable), contact, facts) if usable else None
        if other is None or isinstance(other, Skip):
            return _await_configuration(row, decision.channel, facts.unconfigured[decision.channel], facts.now)
        decision = other
    if isinstance(decision, Skip):
        waited_for = next((WAITED_FOR[e["kind"]] for e in reversed(row.status_history) if e.get("kind") in WAITED_FOR),
                          None)  # fmt: skip
        if decision.reason == "expired" and waited_for:
            move(row, Status.FAILED, waited_for)  # it waited its whole hold for a fix
        else:
            move(row, Status.SKIPPED, decision.reason)
        return Settled(row)
    if isinstance(decision, Defer):
        move(row, Status.DEFERRED, decision.reason, decision.until, until=decision.until.isoformat())
        return Settled(row, deferred=_deferred(decision, contact, facts))
    return decision


def _not_due_yet(row: Row, now: datetime) -> bool:
    """A message a provider refused for now (Retry-After, a backoff) or due its resend later waits for its time,
    however soon a page's retry or a journey's asks again."""
    if row.retry_at is None or now >= row.retry_at:
        return False
    return (row.status == Status.RESERVED and row.refusals > 0) or (
        row.status == Status.UNCERTAIN and row.reason == RESEND_DUE
    )


def _uncount(facts: Facts, contact_id: str, sent_at: datetime | None) -> None:
    """A claim that never left no longer counts toward the contact's caps."""
    counted = facts.counted[contact_id]
    for n, sent in enumerate(counted):
        if sent.at == sent_at:
            del counted[n]
            return


def _ask(message: Message, contact: Contact, facts: Facts, counted: bool = True):
    preferences = preference_view(facts.preferences.get(contact.id))
    recent = facts.counted[contact.id] if counted else ()
    return decide(message, contact_view(contact), preferences, facts.suppressed, recent, facts.rules, facts.now)


def _await_configuration(row: Row, channel: str, setting: str, now: datetime) -> Settled:
    """No configured provider may carry the message: it waits, as for a refused key, until its hold deadline."""
    error = f"no provider is configured for {channel}: set {setting}"
    delay = backoff(AUTH_RETRY_FIRST, AUTH_RETRY_MOST, row.refusals)
    move(row, Status.RESERVED, None, now + delay, error=error, kind="unconfigured")
    return Settled(row, ApplicationError(error, type="ProviderNotConfigured", next_retry_delay=delay))


def _resend(request: DeliverInput, row: Row, contact: Contact | None, facts: Facts, left_as: str) -> Send | Settled:
    """The one resend of a message that may be out already, if the policy still lets it go now.

    Asked on the row's own channel: a STOP, a withdrawn consent, a suppression or the
    campaign's stop since then withholds it for good (the row stays uncertain, as `left_as`);
    quiet hours or a pause defer it. Caps are not asked: the message counts already.
    """
    if contact is None:
        move(row, Status.UNCERTAIN, left_as, withheld="unknown_contact")
        return Settled(row)
    message = replace(_message(request, facts.holds.get(request.campaign_id)), channels=(row.channel,))
    decision = _ask(message, contact, facts, counted=False)
    if isinstance(decision, Skip):
        move(row, Status.UNCERTAIN, left_as, withheld=decision.reason)
        return Settled(row)
    if isinstance(decision, Defer):
        move(row, Status.UNCERTAIN, RESEND_DUE, decision.until, until=decision.until.isoformat())
        return Settled(row, deferred=_deferred(decision, contact, facts) | {"reason": decision.reason})
    return decision


def _message(request: DeliverInput, hold: str | None) -> Message:
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


def _deferred(decision: Defer, contact: Contact, facts: Facts) -> dict:
    """When it may go, in the contact's local time too (for the journey's timer summary)."""
    tz = contact_zone(contact.timezone, contact.phone, facts.rules.default_timezone)
    local = decision.until.astimezone(tz)
    when = f"{local:%H:%M}" if local.date() == facts.now.astimezone(tz).date() else f"{local:%a %d %b %H:%M}"
    return dict(deferred_until=decision.until, deferred_until_local=f"{when} {tz.key}")
