"""What a scheduled or hand-started broadcast run is given. Shared by deploy and the workflow."""

from __future__ import annotations

from dataclasses import dataclass

BROADCAST_WORKFLOW = "BroadcastWorkflow"


@dataclass(frozen=True)
class BroadcastInput:
    campaign_id: str
    version: int
    # For `schedule.timezone: contact`: the run sends to the contacts whose local time matches
    # the campaign's cron at the moment the schedule fires (it fires every 15 minutes).
    local_time_cron: str | None = None
