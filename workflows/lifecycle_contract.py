"""What the lifecycle recompute is given and reports, and the activity it calls (a typed stub).

Shared by deploy (its schedule), the workflow and the activity (activities/lifecycle.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from temporalio import activity

LIFECYCLE_WORKFLOW = "LifecycleWorkflow"
RECOMPUTE_STAGES = "recompute_stages"
# A page heartbeats this often while it works; a worker that dies mid-page is noticed after the timeout.
HEARTBEAT_EVERY = timedelta(seconds=5)
HEARTBEAT_TIMEOUT = timedelta(seconds=30)


@dataclass(frozen=True)
class RecomputePage:
    as_of: datetime
    after: str | None
    limit: int


@dataclass
class RecomputeResult:
    last_contact_id: str | None
    rows: int
    moved: int


@dataclass(frozen=True)
class LifecycleInput:
    page_size: int = 1000
    as_of: datetime | None = None  # carried across continue-as-new
    after: str | None = None
    moved: int = 0
    seen: int = 0


@activity.defn(name=RECOMPUTE_STAGES)
def recompute_stages(page: RecomputePage) -> RecomputeResult:
    """Moves a page of contacts to the stage their facts put them in, and announces the moves."""
    raise NotImplementedError
