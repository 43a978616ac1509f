"""Delivering messages: decide, claim, compose, hand over, record — once per idempotency key.

One core serves both a journey step (`deliver`, one message) and a broadcast page
(`deliver_batch`, up to a thousand), so both keep the same guarantees:

1. In one transaction holding the contacts' locks (`FOR UPDATE` on PostgreSQL; SQLite
   transactions begin IMMEDIATE), each message is decided (carecast.delivery.claim) over
   the contact's preferences, suppressions and counted deliveries, and its ledger row
   (carecast.delivery.ledger) written: settled, or `sending` with its `sent_at`, which
   claims the message's place in the caps at once. Fifty racing journeys see each
   other's claims; a cap of 2 lets 2 through. The claim is a lease (the row's `retry_at`):
   no hand-over after it ends, nor after the attempt's own deadline.
2. Outside the lock the claimed messages are composed (carecast.delivery.compose) and
   handed to the provider, paced by the channel's shared token bucket.
3. What each answer means (carecast.delivery.answers) is recorded in SQL without reading
   the rows back, at least every RECORD_EVERY, so a worker that dies mid-page leaves only
   its last chunks in doubt.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from carecast.channels.base import OutboundMessage, Provider, ProviderError, ProviderReceipt
from carecast.channels.handover import hand_over
from carecast.channels.router import unconfigured_channels
from carecast.clock import Clock
from carecast.contacts.views import contact_facts
from carecast.delivery import ledger
from carecast.delivery.answers import Claimed, read_answer
from carecast.delivery.claim import Facts, Outcome, Settled, decide_message, read_for_policy
from carecast.delivery.compose import Composer
from carecast.delivery.ledger import CLAIMED, HANDING_OVER, Row, Status, move
from carecast.policy.decision import Send
from carecast.policy.model import HouseRules, SentDelivery, rules_source
from carecast.render.bundles import BundleTemplates
from carecast.render.links import LinkSigner
from carecast.render.templates import TemplateError, TemplateRenderer
from carecast.store.campaigns import RecentStates
from carecast.store.models import utcnow
from carecast.store.pacing import PRIORITY, lane, take
from carecast.store.writes import lock_contact_rows
from workflows.journey.contract import DELIVER, DELIVER_TIMEOUT, DeliverInput, DeliverResult

# An attempt starts no hand-over later than this before its own start-to-close deadline, so that one begun
# in time (CARECAST_PROVIDER_TIMEOUT, 10 s by default, must stay below it) ends before a retry may begin.
HANDOVER_MARGIN = timedelta(seconds=15)
# A batch records what its hand-overs came to at least this often: what a crash leaves in doubt.
RECORD_EVERY = timedelta(seconds=0.5)

log = logging.getLogger("carecast.deliver")


class DeliveryActivities:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        renderer: TemplateRenderer,
        provider: Provider,
        house_rules: HouseRules | Callable[[], HouseRules],
        links: LinkSigner,
        clock: Clock = utcnow,
        observe: Callable[[DeliverInput, Outcome], None] | None = None,
    ) -> None:
        """`observe` hears what each request came to, as it is returned (the simulation's timeline)."""
        self.sessions = sessions
        self.rules = rules_source(house_rules)
        self.composer = Composer(sessions, BundleTemplates(sessions, renderer, lambda: self.rules().email), links)
        self.campaign_states = RecentStates()
        self.provider = provider
        self.clock = clock
        self.observe = observe

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
        claimed, lease_ends = self._claim(requests, outcomes, rules)
        for error in sorted({o.message for o in outcomes if getattr(o, "type", None) == "ProviderNotConfigured"}):
            log.error("%s — messages that only it may carry wait until this is fixed", error)
        if claimed:
            # Other attempts take a claimed message once its lease is over: no hand-over after that (less
            # the margin), nor after this attempt's own deadline.
            self._hand_over(claimed, outcomes, rules, lease_ends, min(attempt_ends, lease_ends - HANDOVER_MARGIN))
        if self.observe is not None:
            for request, outcome in zip(requests, outcomes, strict=True):
                self.observe(request, outcome)
        return outcomes  # type: ignore[return-value]

    # 1. decide and claim, under the contacts' locks

    def _claim(self, requests: Sequence[DeliverInput], outcomes: list, rules: HouseRules):
        """The messages this attempt claimed, composed, and when its lease on them ends."""
        contact_ids = sorted({r.contact_id for r in requests})
        claims: list[tuple[int, Row, Send, bool]] = []
        with self.sessions.begin() as session:
            # Lock in id order (no deadlock between two batches), then read the clock: a send that
            # committed while we waited must lie in the past of `now`, or caps would miss it.
            contacts = lock_contact_rows(session, contact_ids)
            now = max([self.clock(), *(r.asked_at for r in requests if r.asked_at)])
            facts = self._facts(session, contacts, contact_ids, requests, rules, now)
            rows = ledger.load(session, [r.idempotency_key for r in requests])
            for index, request in enumerate(requests):
                row = rows.get(request.idempotency_key)
                if row is None:
                    row = rows[request.idempotency_key] = _new_row(request)
                decision = decide_message(request, row, facts)
                if isinstance(decision, Settled):
                    outcomes[index] = decision
                    continue
                # A second hand-over of a message that may be out already (left uncertain, or by a crashed
                # attempt): whatever comes of it, there is no third.
                resend = (
                    row.status in (Status.UNCERTAIN, Status.SENDING)
                    or row.ever(status=Status.UNCERTAIN)
                    or row.ever(resend=True)
                )
                how_far = CLAIMED if len(requests) > 1 else HANDING_OVER
                if row.status == Status.SENDING:  # taken over from an attempt that died mid-send
                    move(row, Status.SENDING, how_far, channel=row.channel, resend=True)
                else:
                    if row.status != Status.UNCERTAIN:  # an uncertain row counts already
                        facts.counted[request.contact_id].append(SentDelivery(now, request.category, decision.channel))
                    row.channel, row.sent_at = decision.channel, now
                    move(row, Status.SENDING, how_far, channel=decision.channel, resend=resend or None)
                claims.append((index, row, decision, resend))
            lease_ends = now + _lease([(decision.channel, requests[i].category) for i, _, decision, _ in claims], rules)
            for _, row, _, _ in claims:
                row.retry_at = lease_ends  # a `sending` row's retry_at is the end of its lease
            ledger.write(session, rows.values(), now)  # and the new rows learn their ids
        for index, outcome in enumerate(outcomes):
            if isinstance(outcome, Settled):
                outcomes[index] = outcome.outcome()
        # Composing needs no lock: the claims are committed, and other batches may go on meanwhile.
        events = self.composer.events([requests[i] for i, *_ in claims])
        return [
            Claimed(
                index,
                row.id,
                self.composer.compose(
                    requests[index], row.id, contact_facts(contacts[requests[index].contact_id]), decision, events
                ),
                requests[index].category,
                resend,
                row.refusals,
            )
            for index, row, decision, resend in claims
        ], lease_ends

    def _facts(self, session: Session, contacts, contact_ids, requests, rules: HouseRules, now: datetime) -> Facts:
        reads = read_for_policy(session, contacts, contact_ids, rules, now)
        return Facts(
            contacts=contacts,
            preferences=reads.preferences,
            suppressed=reads.suppressed,
            counted=reads.counted,
            holds={c: self.campaign_states.get(session, c) for c in {r.campaign_id for r in requests}},
            rules=rules,
            now=now,
            unconfigured=unconfigured_channels(self.provider),
            idempotent=self.provider.idempotent,
        )

    # 2. hand over, outside the lock, and 3. record

    def _hand_over(self, claimed: list[Claimed], outcomes: list, rules: HouseRules, lease: datetime,
                   hand_over_by: datetime) -> None:  # fmt: skip
        """Hands the claimed messages over chunk by chunk and records what happened at least every RECORD_EVERY."""
        handed: list[tuple[Claimed, ProviderReceipt | Exception]] = []
        done, recorded_at = 0, time.monotonic()
        for chunk in self._paced_chunks(claimed, rules):
            sendable = [c for c in chunk if isinstance(c.message, OutboundMessage)]
            if len(claimed) > 1 and sendable and self.clock() < hand_over_by:
                with self.sessions.begin() as session:
                    ledger.mark_handing_over(session, [c.delivery_id for c in sendable], lease)
            if self.clock() >= hand_over_by:
                # Past the lease or the attempt's deadline a retry may already be sending these: hand nothing over.
                answers: list = [ProviderError("the attempt ran out of time before the hand-over")] * len(sendable)
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
                self._record(handed, outcomes, lease)
                handed, recorded_at = [], time.monotonic()
        if handed:
            self._record(handed, outcomes, lease)

    def _paced_chunks(self, claimed: list[Claimed], rules: HouseRules):
        """The claimed messages in chunks of a tenth of a second's rate, each after its tokens are taken."""
        composed = [c for c in claimed if isinstance(c.message, OutboundMessage)]
        # Failed renders go straight to recording; they reach no provider and take no tokens.
        unpaced = [c for c in claimed if not isinstance(c.message, OutboundMessage) or c.message.channel not in
                   rules.send_rates]  # fmt: skip
        if unpaced:
            yield unpaced
        lanes: dict[tuple[str, float], list[Claimed]] = {}  # transactional and care first: they are not kept waiting
        for c in sorted(composed, key=lambda c: c.category not in PRIORITY):
            if (rate := rules.send_rates.get(c.message.channel)) is not None:
                lanes.setdefault(lane(c.message.channel, c.category, rate, rules.reserved_for_care), []).append(c)
        for (bucket, rate), messages in lanes.items():
            size = max(1, int(rate / 10))
            for start in range(0, len(messages), size):
                chunk = messages[start : start + size]
                with self.sessions.begin() as session:  # real time: it paces real requests to the provider
                    wait = take(session, bucket, len(chunk), rate, utcnow())
                if wait > 0:
                    time.sleep(wait)
                yield chunk

    def _record(self, handed: list[tuple[Claimed, ProviderReceipt | Exception]], outcomes: list, lease) -> None:
        attempt = activity.info().attempt if activity.in_activity() else 1
        recorded = ledger.Outcomes(lease)
        with self.sessions.begin() as session:
            for claim, answer in handed:
                outcomes[claim.index] = read_answer(session, recorded, claim, answer, attempt=attempt,
                                                    idempotent=self.provider.idempotent, now=self.clock())  # fmt: skip
            ledger.record(session, recorded)


def _new_row(request: DeliverInput) -> Row:
    return Row.new(request.idempotency_key, workflow_id=request.workflow_id, campaign_id=request.campaign_id,
                   campaign_version=request.campaign_version, category=request.category, step_id=request.step_id,
                   contact_id=request.contact_id, template=request.template)  # fmt: skip


def _attempt_left() -> timedelta:
    """How long this attempt may still begin a hand-over: to its start-to-close deadline, less HANDOVER_MARGIN.

    Real time, not the injected clock's: the server times the attempt out as real seconds pass
    (a simulation's server skips no time while an activity runs)."""
    if not activity.in_activity():
        return DELIVER_TIMEOUT
    info = activity.info()
    if info.start_to_close_timeout is None:
        return DELIVER_TIMEOUT
    deadline = info.started_time + info.start_to_close_timeout
    return max(deadline - utcnow() - HANDOVER_MARGIN, timedelta(0))


def _lease(sends: Sequence[tuple[str, str]], rules: HouseRules) -> timedelta:
    """How long claimed messages are one attempt's: DELIVER_TIMEOUT, plus twice what their lanes' rates need
    (pages running side by side share a lane), so a slow voice page is not cut short, and a page whose
    worker died is taken over no later than that."""
    pacing = 0.0
    for (channel, category), n in Counter(sends).items():
        if rate := rules.send_rates.get(channel):
            pacing += n / lane(channel, category, rate, rules.reserved_for_care)[1]
    return DELIVER_TIMEOUT + 2 * timedelta(seconds=pacing)
