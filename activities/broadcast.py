"""Activities of a broadcast: count the audience, send a page, send again what waited for its time.

Each contact goes through the same `deliver` as a journey step (policy under the
contact's lock, idempotency key per broadcast run and contact), so a retried
page or a restarted worker never sends anyone a second copy.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from functools import lru_cache
from zoneinfo import available_timezones

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.deliver import DeliveryActivities
from carecast.delivery import ledger
from carecast.filters.model import parse_filter
from carecast.filters.sql import to_sql
from carecast.policy.local_time import wall
from carecast.policy.model import HouseRules, rules_source
from carecast.policy.send_windows import compile_window
from carecast.policy.timezones import contact_zone, zone
from carecast.store.campaigns import DeployedVersion, stored_version
from carecast.store.models import Contact
from workflows.broadcast_contract import (
    BROADCAST_PAGE,
    COUNT_AUDIENCE,
    PAGE_END,
    RETRY_DEFERRED,
    BroadcastCounters,
    BroadcastPageInput,
    BroadcastPageResult,
    RetryDeferredInput,
    RetryDeferredResult,
)
from workflows.journey.contract import DeliverInput

STEP_ID = "send"
# A message whose address a provider refused is tried on the next channel at once, up to this many times.
CHANNEL_ROUNDS = 3


@lru_cache(maxsize=1)
def _all_zones() -> tuple[str, ...]:
    return tuple(sorted(available_timezones()))


def zones_at_local_time(cron: str, moment: datetime) -> set[str]:
    """The zones whose wall clock at `moment` is a minute the cron expression names."""
    window = compile_window(cron)
    minute = moment.replace(second=0, microsecond=0)
    return {name for name in _all_zones() if window.matches(wall(minute, zone(name)))}


class BroadcastActivities:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        delivery: DeliveryActivities,
        house_rules: HouseRules | Callable[[], HouseRules],
    ) -> None:
        self.sessions = sessions
        self.delivery = delivery
        self.rules = rules_source(house_rules)

    def _campaign(self, session: Session, campaign_id: str, version: int) -> DeployedVersion:
        deployed = stored_version(session, campaign_id, version)
        if deployed is None:
            raise ApplicationError(f"campaign {campaign_id} v{version} is not deployed", non_retryable=True)
        if deployed.campaign.audience is None or deployed.campaign.send is None:
            raise ApplicationError(f"campaign {campaign_id} is not a broadcast", non_retryable=True)
        return deployed

    def _audience(self, deployed: DeployedVersion, page: BroadcastPageInput):
        campaign = deployed.campaign
        where = to_sql(parse_filter(campaign.audience), page.as_of)
        if page.local_time_cron:
            # Contacts with a zone are matched in SQL; those without one need their phone's zone.
            zones = zones_at_local_time(page.local_time_cron, page.as_of)
            where = and_(where, or_(Contact.timezone.in_(zones), Contact.timezone.is_(None)))
        return where

    @staticmethod
    def _in_local_time(page: BroadcastPageInput, timezone: str | None, phone: str | None, default_zone: str) -> bool:
        if not page.local_time_cron:
            return True
        tz = contact_zone(timezone, phone, default_zone)
        return compile_window(page.local_time_cron).matches(wall(page.as_of.replace(second=0, microsecond=0), tz))

    @activity.defn(name=COUNT_AUDIENCE)
    def count_audience(self, page: BroadcastPageInput) -> int:
        default_zone = self.rules().default_timezone  # the house rules now, once for the call
        with self.sessions() as session:
            deployed = self._campaign(session, page.campaign_id, page.version)
            where = self._audience(deployed, page)
            if not page.local_time_cron:
                return session.scalar(select(func.count()).select_from(Contact).where(where))
            rows = session.execute(select(Contact.timezone, Contact.phone).where(where))
            return sum(1 for timezone, phone in rows if self._in_local_time(page, timezone, phone, default_zone))

    @staticmethod
    def _request(
        deployed: DeployedVersion, run_id: str, contact_id: str, held_since: datetime, asked_at
    ) -> DeliverInput:
        campaign, send = deployed.campaign, deployed.campaign.send
        return DeliverInput(
            workflow_id=run_id, campaign_id=campaign.id, campaign_name=campaign.name,
            campaign_version=deployed.version, category=campaign.category, step_id=STEP_ID, template=send.template,
            channels=send.channel_list(), contact_id=contact_id, trigger_event_id=None, topic=campaign.topic,
            urgent=send.urgent, on_cap=send.on_cap, held_since=held_since,
            max_hold_seconds=int(send.max_hold.total_seconds()), asked_at=asked_at, bundle=deployed.content_hash,
            sender=campaign.sender.from_ if campaign.sender else None,
            reply_to=campaign.sender.reply_to if campaign.sender else None,
        )  # fmt: skip

    def _send_all(self, requests: list[DeliverInput]) -> BroadcastCounters:
        """The whole page through deliver_batch: one locked claim, parallel hand-over, one record.

        A message whose address the provider refused goes again at once (the address is
        suppressed now, so the policy picks the next allowed channel, or skips it); one the
        provider could not take for now (429, 5xx, a refused key, no answer and due its one
        resend) waits in the ledger for its `retry_at`, and the run's retry pass sends it then.
        The rest of the page goes on either way.
        """
        counters = BroadcastCounters()
        busy = 0
        for round_ in range(CHANNEL_ROUNDS):
            refused = []
            outcomes = self.delivery.deliver_batch(requests) if requests else []
            for request, outcome in zip(requests, outcomes, strict=True):
                if isinstance(outcome, ApplicationError):
                    if outcome.type == "AddressRefused" and round_ < CHANNEL_ROUNDS - 1:
                        refused.append(request)
                    elif outcome.type == "ConcurrentAttempt":
                        busy += 1
                    elif outcome.non_retryable:
                        counters.failed += 1
                    else:
                        counters.deferred += 1
                elif outcome.status == "sent":
                    counters.sent += 1
                elif outcome.status == "deferred":
                    counters.deferred += 1
                elif outcome.status == "skipped":
                    counters.skipped[outcome.reason] = counters.skipped.get(outcome.reason, 0) + 1
                elif outcome.status == "uncertain":
                    counters.uncertain += 1
                else:
                    counters.failed += 1
            requests = refused
            if not requests:
                break
        if busy:
            # A crashed attempt left these mid-send; the retried page returns what the others recorded.
            raise ApplicationError(f"{busy} sends are held by an earlier attempt; retrying the page", type="Busy")
        return counters

    @activity.defn(name=PAGE_END)
    def page_end(self, page: BroadcastPageInput) -> str | None:
        """The id that ends the page of `limit` audience contacts after `after`; None: what is left is the last page."""
        with self.sessions() as session:
            deployed = self._campaign(session, page.campaign_id, page.version)
            query = select(Contact.id).where(self._audience(deployed, page))
            if page.after is not None:
                query = query.where(Contact.id > page.after)
            return session.scalar(query.order_by(Contact.id).offset(page.limit - 1).limit(1))

    @activity.defn(name=BROADCAST_PAGE)
    def broadcast_page(self, page: BroadcastPageInput) -> BroadcastPageResult:
        with self.sessions() as session:
            deployed = self._campaign(session, page.campaign_id, page.version)
            query = select(Contact.id, Contact.timezone, Contact.phone).where(self._audience(deployed, page))
            if page.after is not None:
                query = query.where(Contact.id > page.after)
            if page.upto is not None:
                # No limit here: a contact added inside the range since page_end still belongs to this page.
                query = query.where(Contact.id <= page.upto)
            elif page.limit:
                query = query.limit(page.limit)
            rows = session.execute(query.order_by(Contact.id)).all()
        default_zone = self.rules().default_timezone
        chosen = [cid for cid, timezone, phone in rows if self._in_local_time(page, timezone, phone, default_zone)]
        requests = [self._request(deployed, page.run_id, cid, page.as_of, page.asked_at) for cid in chosen]
        counters = self._send_all(requests)
        counters.audience = len(chosen)
        return BroadcastPageResult(last_contact_id=rows[-1][0] if rows else None, rows=len(rows), counters=counters)

    @activity.defn(name=RETRY_DEFERRED)
    def retry_deferred(self, retry: RetryDeferredInput) -> RetryDeferredResult:
        """Sends up to `limit` of the run's waiting messages whose time has come, earliest first."""
        now = max(filter(None, (self.delivery.clock(), retry.asked_at)))
        with self.sessions() as session:
            deployed = self._campaign(session, retry.campaign_id, retry.version)
            due = ledger.due(session, retry.run_id, now, retry.limit)
        activity.heartbeat("claiming")
        requests = [self._request(deployed, retry.run_id, cid, retry.as_of, retry.asked_at) for cid in due]
        counters = self._send_all(requests)
        with self.sessions() as session:
            waiting, next_at = ledger.waiting(session, retry.run_id)
        counters.deferred = 0  # `waiting` says how many wait now
        return RetryDeferredResult(counters=counters, next_at=next_at, waiting=waiting, more=len(due) == retry.limit)
