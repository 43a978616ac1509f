"""A fresh preference link, asked for from an old one.

An old or revoked link may only turn things off; its page offers to send a fresh
link. Asking records the event `preference_link_requested` for the contact, once a
day at most (the event id names the day), and a campaign that listens to it sends
the link by the contact's own channels — the shipped `campaigns/preference_link.yaml`
does. So the link goes to the address on file, never to whoever holds the old one,
through the same policy, ledger and retries as any message.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable

from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client

from carecast.intake.ingest import ingest_event
from carecast.intake.record import IncomingEvent
from carecast.store.models import utcnow

LINK_REQUESTED = "preference_link_requested"


def link_requester(
    sessions: sessionmaker[Session], temporal: Callable[[], Awaitable[Client]], task_queue: str
) -> Callable[[str], Awaitable[str]]:
    """`request(contact_id)`: "sent", "already" (asked today) or "unavailable" (no campaign sends links)."""

    async def request(contact_id: str) -> str:
        now = utcnow()
        subject = hashlib.sha256(contact_id.encode()).hexdigest()[:24]  # any id fits the 128-character event id
        event = IncomingEvent(
            event_id=f"preference-link/{subject}/{now:%Y-%m-%d}",
            contact_id=contact_id,
            name=LINK_REQUESTED,
            occurred_at=now,
        )
        try:
            client = await temporal()
        except RuntimeError:  # Temporal does not answer: the journey is queued for the relay
            client = None
        result = await ingest_event(client, sessions, task_queue, event)
        if result.duplicate:
            return "already"
        return "sent" if result.started or result.queued or result.already_running else "unavailable"

    return request
