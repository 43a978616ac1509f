"""What a scheduled or hand-started broadcast run is given, and the activities it calls (typed stubs).

Shared by deploy, the workflow and the activities (activities/broadcast.py registers the
real ones under these names).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from temporalio import activity

BROADCAST_WORKFLOW = "BroadcastWorkflow"
COUNT_AUDIENCE = "count_audience"
BROADCAST_PAGE = "broadcast_page"
PAGE_END = "page_end"
RETRY_DEFERRED = "retry_deferred"


@dataclass(frozen=True)
class BroadcastInput:
    campaign_id: str
    version: int
    # For `schedule.timezone: contact`: the run sends to the contacts whose local time matches
    # the campaign's cron at the moment the schedule fires (it fires every 15 minutes).
    local_time_cron: str | None = None
    page_size: int = 1000
    # Pages before continuing as new, which keeps the history small (about ten events a page);
    # each continue-as-new waits for the pages in flight, so not too often either.
    pages_per_run: int = 40
    # Pages sent at once: each is one activity, so several worker processes share a broadcast,
    # and one page's rendering overlaps another's wait on the provider.
    parallel_pages: int = 4
    state: BroadcastState | None = None  # set when the workflow continues as new


@dataclass
class BroadcastCounters:
    audience: int = 0  # contacts the audience query matched so far
    sent: int = 0
    deferred: int = 0  # waiting to be tried again: held by the policy, or refused for now by the provider
    failed: int = 0
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> count
    uncertain: int = 0  # handed over with no answer: maybe out, never sent again (marketing)

    def add(self, other: BroadcastCounters) -> None:
        self.audience += other.audience
        self.sent += other.sent
        self.deferred += other.deferred
        self.failed += other.failed
        self.uncertain += other.uncertain
        for reason, count in other.skipped.items():
            self.skipped[reason] = self.skipped.get(reason, 0) + count

    def summary(self) -> str:
        skipped = sum(self.skipped.values())
        summary = f"{self.sent} sent, {skipped} skipped, {self.deferred} deferred, {self.failed} failed"
        return summary + (f", {self.uncertain} uncertain" if self.uncertain else "")


@dataclass(frozen=True)
class BroadcastPageInput:
    campaign_id: str
    version: int
    run_id: str  # the broadcast's workflow id: part of every delivery's idempotency key
    as_of: datetime  # the audience and local-time match are evaluated at this moment
    after: str | None  # keyset cursor: the last contact id of the previous page
    limit: int
    local_time_cron: str | None
    asked_at: datetime | None = None  # the workflow's clock now; sends are judged no earlier
    # With `upto`, the page is every audience contact in (after, upto], however many that is now.
    upto: str | None = None


@dataclass
class BroadcastPageResult:
    last_contact_id: str | None
    rows: int  # contacts read from the audience query (before the local-time match)
    counters: BroadcastCounters


@dataclass(frozen=True)
class RetryDeferredInput:
    campaign_id: str
    version: int
    run_id: str
    as_of: datetime  # when the run began: deferred messages have been held since then
    asked_at: datetime | None = None
    limit: int = 1000  # messages a pass sends at most; `more` says whether others are due already


@dataclass
class RetryDeferredResult:
    # What became of the messages this pass sent. Before `waiting`, `deferred` counted down by those resolved.
    counters: BroadcastCounters
    next_at: datetime | None  # when the earliest message still waiting may go
    waiting: int | None = None  # messages of the run waiting for their time, after this pass
    more: bool = False  # this pass sent its limit: more may be due now


@dataclass
class BroadcastState:
    """Carried across continue-as-new, and what the `progress` query returns."""

    as_of: datetime | None = None  # when it was due (a schedule's fire) or began: its audience is judged then
    total: int | None = None
    cursor: str | None = None
    pages: int = 0
    done_reading: bool = False
    paused: bool = False
    cancelled: bool = False
    counters: BroadcastCounters = field(default_factory=BroadcastCounters)


@activity.defn(name=COUNT_AUDIENCE)
def count_audience(page: BroadcastPageInput) -> int:
    """How many contacts the audience holds at the run's moment."""
    raise NotImplementedError


@activity.defn(name=PAGE_END)
def page_end(page: BroadcastPageInput) -> str | None:
    """The id that ends the next page; None: what is left is the last page."""
    raise NotImplementedError


@activity.defn(name=BROADCAST_PAGE)
def broadcast_page(page: BroadcastPageInput) -> BroadcastPageResult:
    """Asks the policy and sends for every contact of a page."""
    raise NotImplementedError


@activity.defn(name=RETRY_DEFERRED)
def retry_deferred(retry: RetryDeferredInput) -> RetryDeferredResult:
    """Sends the deferred messages of the run that may go now."""
    raise NotImplementedError
