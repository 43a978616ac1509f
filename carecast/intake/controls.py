"""An operator's hold on a campaign: `carecast campaign stop|start|pause|resume CAMPAIGN`.

The state is a row per campaign (none: running), read where it matters: enrolment
takes no entries into a stopped campaign, and every send asks it (a paused
campaign's messages wait, a stopped one's are skipped), so no message slips out
whatever Temporal heard. Running journeys are told at once through the outbox:
stop ends them, pause shows and holds them, resume lets them go on.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from carecast.intake.outgoing import FAST_PATH_LEASE
from carecast.store.campaigns import PAUSED, RUNNING, STOPPED
from carecast.store.models import CampaignControl, Enrolment, JourneySignal, utcnow

# What each command makes of the campaign, and what running journeys are told.
COMMANDS = {"stop": (STOPPED, "stop"), "start": (RUNNING, "resume"), "pause": (PAUSED, "pause"),
            "resume": (RUNNING, "resume")}  # fmt: skip


@dataclass(frozen=True)
class ControlChange:
    campaign_id: str
    before: str
    after: str
    told: list[int]  # the outbox rows for its running journeys


class ControlError(ValueError):
    pass


def control_campaign(
    session: Session, campaign_id: str, command: str, reason: str | None = None, now: datetime | None = None
) -> ControlChange:
    """Applies `command` (stop, start, pause, resume) and queues the signal for each running journey."""
    state, signal = COMMANDS[command]
    now = now or utcnow()
    row = session.get(CampaignControl, campaign_id, with_for_update=True)
    before = row.state if row is not None else RUNNING
    if before == STOPPED and command in ("pause", "resume"):
        raise ControlError(f"{campaign_id} is stopped; `carecast campaign start {campaign_id}` takes entries again")
    if before == state:
        return ControlChange(campaign_id, before, state, [])
    if row is None:
        session.add(CampaignControl(campaign_id=campaign_id, state=state, reason=reason, changed_at=now))
    else:
        row.state, row.reason, row.changed_at = state, reason, now
    running = session.execute(
        select(Enrolment.id, Enrolment.workflow_id).where(
            Enrolment.campaign_id == campaign_id, Enrolment.ended_at.is_(None)
        )
    ).all()
    key = f"{signal}/{now.isoformat()}"
    rows = [dict(enrolment_id=eid, workflow_id=wid, kind=signal, signal_key=key, occurred_at=now, created_at=now,
                 next_attempt_at=now + FAST_PATH_LEASE, attempts=0) for eid, wid in running]  # fmt: skip
    told = list(session.scalars(insert(JourneySignal).returning(JourneySignal.id), rows)) if rows else []
    return ControlChange(campaign_id, before, state, told)
