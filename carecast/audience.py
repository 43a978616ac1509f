"""`carecast audience CAMPAIGN`: whom a broadcast would reach now, and what the policy would do with each.

A dry run: the audience filter in SQL, then the same policy every send asks (consent,
suppressions, topics, pauses, quiet hours in each contact's zone, caps over what each
contact was sent), a page of contacts at a time. It reads and writes nothing else: no
delivery is reserved, no cap is used up.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from carecast.campaign.model import Campaign
from carecast.contacts.views import contact_view, preference_view
from carecast.delivery.claim import read_for_policy
from carecast.filters.model import parse_filter
from carecast.filters.sql import to_sql
from carecast.policy.decide import decide
from carecast.policy.decision import Defer, Send, Skip
from carecast.policy.model import HouseRules, Message
from carecast.store.campaigns import campaign_states
from carecast.store.models import Contact

PAGE = 1000


@dataclass
class AudienceReport:
    matched: int = 0
    sends: Counter[str] = field(default_factory=Counter)  # channel -> contacts it would go to now
    deferred: Counter[str] = field(default_factory=Counter)  # reason -> contacts it would wait for
    skipped: Counter[str] = field(default_factory=Counter)  # reason -> contacts it would never reach

    def as_dict(self) -> dict:
        return {"matched": self.matched, "send": dict(self.sends), "deferred": dict(self.deferred),
                "skipped": dict(self.skipped)}  # fmt: skip


def audience_report(session: Session, campaign: Campaign, rules: HouseRules, now: datetime) -> AudienceReport:
    send = campaign.send
    hold = campaign_states(session, [campaign.id]).get(campaign.id)
    message = Message(
        category=campaign.category, channels=tuple(send.channel_list()), topic=campaign.topic, urgent=send.urgent,
        on_cap=send.on_cap, held_since=now, max_hold=send.max_hold,
        campaign_hold=hold if hold in ("paused", "stopped") else None,
    )  # fmt: skip
    where = to_sql(parse_filter(campaign.audience), now)
    report = AudienceReport()
    after = ""
    while True:
        page = session.scalars(select(Contact).where(where, Contact.id > after).order_by(Contact.id).limit(PAGE)).all()
        if not page:
            return report
        after = page[-1].id
        reads = read_for_policy(session, {c.id: c for c in page}, [c.id for c in page], rules, now)
        for contact in page:
            prefs = preference_view(reads.preferences.get(contact.id))
            recent = reads.counted[contact.id]
            decision = decide(message, contact_view(contact), prefs, reads.suppressed, recent, rules, now)
            report.matched += 1
            if isinstance(decision, Send):
                report.sends[decision.channel] += 1
            elif isinstance(decision, Defer):
                report.deferred[decision.reason] += 1
            elif isinstance(decision, Skip):
                report.skipped[decision.reason] += 1
