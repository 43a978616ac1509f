"""What a provider's answer to a hand-over means for the message, its ledger row and Temporal.

- A receipt: `sent`.
- No answer after the request went out (a read timeout, a reset after sending): `uncertain`.
  Marketing is never sent again; transactional and care are sent once more, after
  RESEND_UNCERTAIN_AFTER (the provider may be struggling), both hand-overs in the history.
- An address the provider refused (invalid, or its owner replied STOP): the address is
  suppressed and the message asked again at once, so it goes by the next allowed channel.
- Refused for now (429, 5xx, no connection made, our key refused): known not to be out, so
  back to `reserved`, tried again after Retry-After or a backoff; a refused key is tried
  until the message's hold deadline, then `failed` as `provider_auth_failed`.
- Refused as it is (any other 4xx) or a template that does not render: `failed`.

Errors that reach Temporal have their addresses masked; the ledger keeps the provider's words.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session
from temporalio.exceptions import ApplicationError

from carecast.channels.base import OutboundMessage, ProviderError, ProviderReceipt
from carecast.channels.scrub import scrub
from carecast.contacts.suppressions import add_suppression
from carecast.delivery.ledger import Outcomes, Status
from carecast.render.templates import TemplateError
from workflows.journey.contract import DeliverResult

RESEND_AFTER_UNCERTAINTY = {"transactional", "care"}
RESEND_UNCERTAIN_AFTER = timedelta(minutes=2)
# An uncertain message with this reason waits for its one resend; it is the one `uncertain` row claimed again.
RESEND_DUE = "no_answer_resend_due"
# Refused credentials: tried again after 30 s, 1 min, 2 min, … at most every 15 minutes, until the hold deadline.
AUTH_RETRY_FIRST, AUTH_RETRY_MOST = timedelta(seconds=30), timedelta(minutes=15)
# A 429 or 5xx without Retry-After: 2 s, 4 s, … at most every 5 minutes, as a journey's SEND_RETRY policy.
PROVIDER_RETRY_FIRST, PROVIDER_RETRY_MOST = timedelta(seconds=2), timedelta(minutes=5)
# How the address is suppressed when a provider says it cannot or must not receive messages.
SUPPRESSION_REASONS = {"invalid_address": "invalid_address", "unsubscribed": "stop"}
ERROR_TYPES = {"temporary": "ProviderUnavailable", "rejected": "ProviderRejected", "auth": "ProviderAuthFailed"}

log = logging.getLogger("carecast.deliver")


def backoff(first: timedelta, most: timedelta, tries_before: int) -> timedelta:
    return min(first * 2 ** min(tries_before, 10), most)


@dataclass
class Claimed:
    """A message this attempt claimed: composed for the provider, or the template's error."""

    index: int  # its place in the batch
    delivery_id: int
    message: OutboundMessage | TemplateError
    category: str
    resend: bool = False  # the second and last hand-over of a message that may be out already
    refusals: int = 0  # how often a provider refused it for now before: the backoff


def read_answer(
    session: Session,
    recorded: Outcomes,
    claim: Claimed,
    answer: ProviderReceipt | Exception,
    *,
    attempt: int,
    idempotent: bool,
    now: datetime,
) -> DeliverResult | ApplicationError:
    """Adds the row's record to `recorded` (suppressing a refused address in `session`); returns what
    the activity answers for this message: its result, or the error Temporal retries it on."""
    delivery_id, message = claim.delivery_id, claim.message
    if isinstance(answer, TemplateError):
        # A broken template will not mend itself on retry; the operator must see it.
        recorded.add_not_sent(delivery_id, Status.FAILED, "template_error", error=str(answer))
        return ApplicationError(str(answer), non_retryable=True, type="TemplateError")
    if not isinstance(answer, ProviderError):
        recorded.add_sent(delivery_id, message.channel, answer.provider, answer.message_id, answer.segments)
        return DeliverResult(delivery_id=delivery_id, status=Status.SENT.value, channel=message.channel)
    said = scrub(str(answer), message.to)  # Temporal keeps failures in the history: no addresses there
    channel = message.channel
    if answer.kind == "uncertain":
        if claim.category in RESEND_AFTER_UNCERTAINTY and not claim.resend and not idempotent:
            delay = RESEND_UNCERTAIN_AFTER
            recorded.add_uncertain(delivery_id, RESEND_DUE, now + delay, channel=channel, error=str(answer))
            return ApplicationError(said, type="ProviderUncertain", next_retry_delay=delay)
        recorded.add_uncertain(delivery_id, "no_answer", None, channel=channel, error=str(answer))
        return DeliverResult(delivery_id=delivery_id, status=Status.UNCERTAIN.value, channel=channel,
                             reason="no_answer")  # fmt: skip
    failure, retry_at = _refusal(session, message, answer, said, claim.refusals, attempt, now)
    if failure.non_retryable:  # refused as it is: trying again would not change the answer
        recorded.add_not_sent(delivery_id, Status.FAILED, "provider_rejected", error=str(answer), kind=answer.kind)
    else:  # known not to be out: back to reserved, and it no longer counts toward caps
        recorded.add_not_sent(delivery_id, Status.RESERVED, None, retry_at, error=str(answer), kind=answer.kind)
    return failure


def _refusal(
    session: Session, message: OutboundMessage, error: ProviderError, said: str, refusals: int, attempt: int, now
) -> tuple[ApplicationError, datetime | None]:
    """What Temporal does about a provider's refusal, and when the message may be tried again.

    A journey's step is retried by Temporal; a broadcast's retry pass takes the message
    again at its `retry_at`.
    """
    if error.kind in SUPPRESSION_REASONS:
        reason = SUPPRESSION_REASONS[error.kind]
        add_suppression(session, message.channel, message.to, reason, f"provider:{error.kind}")
        # due at once: the message goes by its next channel (a page asks again within itself)
        return ApplicationError(said, type="AddressRefused", next_retry_delay=timedelta(seconds=1)), now
    if error.kind == "auth":
        # A configuration slip waits to be fixed rather than lose the message: retried with a capped
        # backoff until the message's hold deadline (its max_hold), then failed with this reason.
        delay = backoff(AUTH_RETRY_FIRST, AUTH_RETRY_MOST, max(attempt - 1, refusals))
        log.error("%s — messages on this channel wait (next try in %s) until this is fixed", said, delay)
        return ApplicationError(said, type=ERROR_TYPES["auth"], next_retry_delay=delay), now + delay
    if not error.retryable:
        return ApplicationError(said, non_retryable=True, type=ERROR_TYPES[error.kind]), None
    told = timedelta(seconds=error.retry_after) if error.retry_after else None
    delay = told or backoff(PROVIDER_RETRY_FIRST, PROVIDER_RETRY_MOST, refusals)
    return ApplicationError(said, type=ERROR_TYPES[error.kind], next_retry_delay=told), now + delay
