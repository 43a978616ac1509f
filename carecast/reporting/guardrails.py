"""Guardrails that stop a campaign that starts hurting: unsubscribes, complaints or bounces over their ceiling.

The API watches them as the providers' news comes in: after a webhook request, at most every
`CARECAST_GUARDRAIL_CHECK_SECONDS`, it judges the running version of each campaign that has
had news since its last look, as `carecast report` judges it (`guardrail_verdicts`: not before
`min_sample` messages went out, and a breach only when the rate's whole 95 % interval is over
the ceiling). A breach is recorded once a version and rate (`guardrail_breaches`), and:

- a marketing or care campaign is paused, as `carecast campaign pause` does — its messages wait,
  its running journeys are told and show it in the Temporal UI — with the reason, until an
  operator runs `carecast campaign resume` (which the same breach never undoes again);
- a transactional campaign goes on (order confirmations must go out) and is only alerted.

Either way the breach is logged as an error and, with `CARECAST_ALERT_WEBHOOK_URL` set, POSTed
there as JSON.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.request
from dataclasses import asdict

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from carecast.campaign.kpis import HouseGuardrails
from carecast.delivery.ledger import HANDED_OVER
from carecast.intake.controls import control_campaign
from carecast.metrics import GUARDRAIL_BREACHES
from carecast.reporting.campaign import GUARDRAIL_NEWS, guardrail_target, guardrail_verdicts, house_guardrails
from carecast.reporting.verdicts import MISSED, Breach
from carecast.store.campaigns import STOPPED, active_versions
from carecast.store.models import Delivery, DeliveryEvent, GuardrailBreach, utcnow
from carecast.store.writes import insert_new

log = logging.getLogger("carecast.guardrails")
PAUSED, ALERTED = "paused", "alerted"


class GuardrailWatch:
    def __init__(
        self, sessions: sessionmaker[Session], fallback: HouseGuardrails, every: float, alert_url: str | None = None
    ) -> None:
        self.sessions = sessions
        self.fallback = fallback  # the local policy.yaml's, until one is deployed
        self.every = every
        self.alert_url = alert_url
        self._lock = threading.Lock()
        self._checked_at = float("-inf")
        self._seen = 0  # the last delivery_events id looked at

    def poke(self) -> list[Breach]:
        """Checks now, unless a check ran within `every` seconds (or runs now in another thread)."""
        if time.monotonic() - self._checked_at < self.every or not self._lock.acquire(blocking=False):
            return []
        try:
            self._checked_at = time.monotonic()
            return self.check()
        except Exception:  # a check that fails must not fail the provider's callback: the next one tries again
            log.exception("the guardrail check failed")
            return []
        finally:
            self._lock.release()

    def check(self) -> list[Breach]:
        with self.sessions.begin() as session:
            newest = session.scalar(select(func.max(DeliveryEvent.id))) or 0
            touched = set(session.scalars(
                select(DeliveryEvent.campaign_id).distinct()
                .where(DeliveryEvent.id > self._seen, DeliveryEvent.id <= newest,
                       DeliveryEvent.kind.in_(GUARDRAIL_NEWS.values()))
            ))  # fmt: skip
            breaches = self._judge(session, touched) if touched else []
        self._seen = newest
        for breach in breaches:
            GUARDRAIL_BREACHES.labels(breach.action).inc()
            then = "paused; `carecast campaign resume` lifts it" if breach.action == PAUSED else "alert only"
            log.error("%s: %s — %s", breach.campaign_id, breach.reason, then)
            self._alert(breach)
        return breaches

    def _judge(self, session: Session, campaigns: set[str]) -> list[Breach]:
        house = house_guardrails(session, self.fallback)
        breaches = []
        for deployed in active_versions(session):
            campaign = deployed.campaign
            if campaign.id not in campaigns or deployed.state == STOPPED:
                continue
            sent, news = _counts(session, campaign.id, deployed.version)
            for verdict in guardrail_verdicts(sent, news, campaign.kpis, house):
                if verdict.verdict != MISSED:
                    continue
                ceiling = guardrail_target(verdict.kpi, campaign.kpis, house).at_most
                action = ALERTED if campaign.category == "transactional" else PAUSED
                breach = Breach(campaign.id, deployed.version, verdict.kpi, verdict.value, ceiling, verdict.hits,
                                verdict.trials, action, utcnow())  # fmt: skip
                row = asdict(breach)
                if insert_new(session, GuardrailBreach, row, ["campaign_id", "campaign_version", "kpi"],
                              GuardrailBreach.id) is None:  # fmt: skip
                    continue  # acted on before: an operator may have resumed it since
                if action == PAUSED:
                    control_campaign(session, campaign.id, "pause", breach.reason)
                breaches.append(breach)
        return breaches

    def _alert(self, breach: Breach) -> None:
        if not self.alert_url:
            return
        body = json.dumps(asdict(breach) | {"found_at": breach.found_at.isoformat(), "reason": breach.reason}).encode()
        request = urllib.request.Request(self.alert_url, body, {"Content-Type": "application/json"}, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=5) as answer:  # noqa: S310 (the operator's own URL)
                answer.read()
        except Exception as exc:  # the alert is a courtesy: the pause and the log stand without it
            log.error("the guardrail alert to CARECAST_ALERT_WEBHOOK_URL failed: %s", exc)


def _counts(session: Session, campaign_id: str, version: int) -> tuple[int, dict[str, int]]:
    """Messages a version handed over, and how many of them had each kind of guardrail news."""
    d = Delivery
    sent = session.scalar(select(func.count()).select_from(d).where(
        d.campaign_id == campaign_id, d.campaign_version == version, d.status.in_(HANDED_OVER)))  # fmt: skip
    e = DeliveryEvent
    news = dict(session.execute(
        select(e.kind, func.count()).where(e.campaign_id == campaign_id, e.campaign_version == version, e.first,
                                           e.kind.in_(GUARDRAIL_NEWS.values())).group_by(e.kind)
    ).all())  # fmt: skip
    return sent or 0, news
