"""Campaign tests: files under `campaigns/tests/` that say what a contact should get, and never get.

    description: A new customer in Paris gets a tip the next morning.
    weeks: 3
    start: monday 09:00          # the default: the next Monday at 09:00 in the contact's zone
    contact: {timezone: Europe/Paris, email: ada@example.com, attributes: {first_name: Ada}}
    events:
      - {event: signed_up, at: 0d}
      - {event: account_closed, at: 2w}
    expect:
      - message: {campaign: welcome_series, step: tips, channel: email, within: [1d, 2d], local: ["08:00", "21:00"]}
      - no_message: {campaign: welcome_series, step: picks}
      - quiet: {start: "21:00", end: "08:00", categories: [marketing, care]}
      - at_most: {messages: 3, per: 7d, categories: [marketing]}
      - nothing_after: {event: account_closed}

`carecast test` simulates each file against the local campaign files (carecast/simulation/run.py)
and checks every expectation against the timeline. An expectation that could never fail is
refused before it runs: a campaign or step the campaigns do not have, a time range past the end
or empty, `nothing_after` an event the test never sends. A failure prints the timeline as a diff:
`+` marks a message that should not have come, `-` one that should have and did not.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Annotated, Any

from pydantic import BeforeValidator, Discriminator, Field, Tag, model_validator

from carecast.campaign.durations import Duration, format_duration
from carecast.campaign.patterns import CLOCK, IDENTIFIER
from carecast.channels.base import ChannelName
from carecast.contacts.schema import Strict
from carecast.policy.model import Category
from carecast.simulation.scenario import (
    DEFAULT_WEEKS,
    MAX_WEEKS,
    Offset,
    Profile,
    ScheduledEvent,
    StartAt,
    events_within,
)
from carecast.simulation.timeline import Entry, Timeline

KINDS = ("message", "no_message", "quiet", "at_most", "nothing_after")
TimeOfDay = Annotated[str, Field(pattern=CLOCK)]


class MessageMatch(Strict):
    """Which messages: every field given must hold."""

    campaign: str | None = Field(default=None, pattern=IDENTIFIER)
    step: str | None = Field(default=None, pattern=IDENTIFIER)
    channel: ChannelName | None = None
    within: tuple[Offset, Offset] | None = Field(default=None, description="[from, to] after the start, e.g. [1d, 2d]")
    local: tuple[TimeOfDay, TimeOfDay] | None = Field(default=None, description='local time of day ["08:00", "21:00"]')
    count: int | None = Field(default=None, ge=0, description="exactly this many (default: at least one)")

    def matches(self, entry: Entry, timeline: Timeline) -> bool:
        if entry.kind != "sent":
            return False
        if any(want is not None and want != got for want, got in
               ((self.campaign, entry.campaign), (self.step, entry.step), (self.channel, entry.channel))):  # fmt: skip
            return False
        if self.within is not None and not self.within[0] <= entry.at - timeline.start <= self.within[1]:
            return False
        return self.local is None or in_hours(timeline.local(entry.at).time(), *self.local)

    def describe(self) -> str:
        what = " · ".join(p for p in (self.campaign, self.step, self.channel) if p) or "any message"
        when = (
            f", {format_duration(self.within[0])} to {format_duration(self.within[1])} after the start"
            if self.within
            else ""
        )
        hours = f", at {self.local[0]}–{self.local[1]} local time" if self.local else ""
        return f"{what}{when}{hours}"


class Scope(Strict):
    """Which messages a rule is about: one campaign's, some categories', one channel's, or (by default) all."""

    campaign: str | None = Field(default=None, pattern=IDENTIFIER)
    categories: list[Category] | None = None
    channel: ChannelName | None = None

    def covers(self, entry: Entry) -> bool:
        return (
            entry.kind == "sent"
            and (self.campaign is None or entry.campaign == self.campaign)
            and (self.categories is None or entry.category in self.categories)
            and (self.channel is None or entry.channel == self.channel)
        )

    def describe(self) -> str:
        which = self.campaign or (" or ".join(self.categories) if self.categories else "")
        return " ".join(p for p in (which, self.channel) if p) or "any"


class Quiet(Scope):
    start: str = Field(pattern=CLOCK)
    end: str = Field(pattern=CLOCK)


class AtMost(Scope):
    messages: int = Field(ge=0)
    per: Duration
    counting: list[Category] | None = Field(
        default=None, description="the categories that count toward the limit (default: the messages it is about)"
    )

    def counts(self, entry: Entry) -> bool:
        return self.covers(entry) if self.counting is None else entry.kind == "sent" and entry.category in self.counting


class NothingAfter(Scope):
    event: str = Field(pattern=IDENTIFIER)


class ExpectMessage(Strict):
    message: MessageMatch


class ExpectNoMessage(Strict):
    no_message: MessageMatch


class ExpectQuiet(Strict):
    quiet: Quiet


class ExpectAtMost(Strict):
    at_most: AtMost


class ExpectNothingAfter(Strict):
    nothing_after: NothingAfter


def _kind(value: Any) -> str | None:
    if isinstance(value, dict):
        present = [k for k in KINDS if k in value]
        return present[0] if len(present) == 1 else None
    return next((k for k in KINDS if hasattr(value, k)), None)


def _one_kind(value: Any) -> Any:
    if isinstance(value, dict) and sum(k in value for k in KINDS) != 1:
        raise ValueError(f"an expectation has exactly one of {', '.join(KINDS)}")
    return value


Expectation = Annotated[
    Annotated[ExpectMessage, Tag("message")]
    | Annotated[ExpectNoMessage, Tag("no_message")]
    | Annotated[ExpectQuiet, Tag("quiet")]
    | Annotated[ExpectAtMost, Tag("at_most")]
    | Annotated[ExpectNothingAfter, Tag("nothing_after")],
    Discriminator(_kind, custom_error_type="expectation", custom_error_message=f"use one of {', '.join(KINDS)}"),
    BeforeValidator(_one_kind),
]


DEFAULT_TEST_START = "monday 09:00"


class CampaignTest(Strict):
    description: str = ""
    weeks: float = Field(default=DEFAULT_WEEKS, gt=0, le=MAX_WEEKS)
    start: StartAt = Field(default=DEFAULT_TEST_START, description="monday 09:00 (contact's zone) or a date and time")
    contact: Profile
    events: list[ScheduledEvent] = Field(default_factory=list)
    expect: list[Expectation] = Field(min_length=1)

    @property
    def length(self) -> timedelta:
        return timedelta(weeks=self.weeks)

    @model_validator(mode="after")
    def could_fail(self) -> CampaignTest:
        """Refuses what would hold whatever the campaigns did: events after the end, empty or late ranges."""
        events_within(self.events, self.length)
        sent = {e.event for e in self.events}
        for number, expectation in enumerate(self.expect, start=1):
            if problem := _vacuous(_rule(expectation), self.length, sent):
                raise ValueError(f"expectation {number}: {problem}")
        return self


def _rule(expectation: Any) -> Any:
    return getattr(expectation, _kind(expectation))


def _vacuous(rule: Any, length: timedelta, sent: set[str]) -> str | None:
    if isinstance(rule, MessageMatch) and rule.within is not None:
        begin, finish = rule.within
        if begin > finish:
            return f"within [{format_duration(begin)}, {format_duration(finish)}] ends before it begins"
        if begin > length:
            return f"within starts at {format_duration(begin)}, after the test's end ({format_duration(length)})"
    hours = rule.local if isinstance(rule, MessageMatch) else None
    if isinstance(rule, Quiet):
        hours = (rule.start, rule.end)
    if hours is not None and hours[0] == hours[1]:
        return f"the hours {hours[0]}–{hours[1]} are empty; write a range such as 21:00–08:00"
    if isinstance(rule, NothingAfter) and rule.event not in sent:
        return f"nothing_after {rule.event}, but the test never sends {rule.event}: add it to events"
    return None


def unknown_names(test: CampaignTest, sends: dict[str, list[str]]) -> list[str]:
    """Campaigns and steps an expectation names that the campaigns do not have (`sends`: id → sending steps)."""
    problems = []
    for number, expectation in enumerate(test.expect, start=1):
        rule = _rule(expectation)
        campaign, step = rule.campaign, getattr(rule, "step", None)
        if campaign is not None and campaign not in sends:
            problems.append(f"expectation {number}: no campaign {campaign!r}; the campaigns are {', '.join(sends)}")
        elif step is not None and campaign is not None and step not in sends[campaign]:
            steps = ", ".join(sends[campaign])
            problems.append(f"expectation {number}: {campaign} has no step {step!r} that sends; it sends at {steps}")
        elif step is not None and campaign is None and not any(step in steps for steps in sends.values()):
            problems.append(f"expectation {number}: no campaign has a step {step!r} that sends")
    return problems


@dataclass
class Verdict:
    """What one expectation came to: a problem (or none), the entries that broke it, and a missing one."""

    problem: str | None = None
    unwanted: list[Entry] = field(default_factory=list)
    missing: tuple[datetime, str] | None = None  # where the expected message should have been, and what


def check(expectation: Any, timeline: Timeline) -> Verdict:
    match expectation:
        case ExpectMessage(message=m):
            found = [e for e in timeline.messages() if m.matches(e, timeline)]
            if (m.count is None and found) or len(found) == m.count:
                return Verdict()
            if m.count is None or len(found) < m.count:
                at = timeline.start + (m.within[0] if m.within else timeline.end - timeline.start)
                wanted = f"{m.count} × " if m.count is not None else ""
                return Verdict(f"expected {wanted}{m.describe()}; {len(found)} came", missing=(at, m.describe()))
            return Verdict(f"expected {m.count} × {m.describe()}; {len(found)} came", unwanted=found[m.count :])
        case ExpectNoMessage(no_message=m):
            found = [e for e in timeline.messages() if m.matches(e, timeline)]
            return Verdict(f"expected no {m.describe()}; {len(found)} came", unwanted=found) if found else Verdict()
        case ExpectQuiet(quiet=q):
            loud = [
                e for e in timeline.messages() if q.covers(e) and in_hours(timeline.local(e.at).time(), q.start, q.end)
            ]
            hours = f"{q.start}–{q.end} local time"
            return Verdict(f"expected no {q.describe()} message at {hours}", unwanted=loud) if loud else Verdict()
        case ExpectAtMost(at_most=a):
            # As the policy counts: a message goes only if, with it, the `per` before it holds at most `messages`.
            counted = [e for e in timeline.messages() if a.counts(e)]
            over = [m for m in timeline.messages() if a.covers(m) and
                    len([e for e in counted if m.at - a.per < e.at <= m.at]) > a.messages]  # fmt: skip
            counting = f" counting {' and '.join(a.counting)}" if a.counting else ""
            limit = f"at most {a.messages} {a.describe()} message(s) per {format_duration(a.per)}{counting}"
            return Verdict(f"expected {limit}; {len(over)} went over it", unwanted=over) if over else Verdict()
        case ExpectNothingAfter(nothing_after=n):
            came = next((e.at for e in timeline.ordered() if e.kind == "event" and e.detail == n.event), None)
            late = [e for e in timeline.messages() if came is not None and e.at > came and n.covers(e)]
            return Verdict(f"expected no {n.describe()} message after {n.event}", unwanted=late) if late else Verdict()
    raise TypeError(f"unknown expectation {expectation!r}")


def in_hours(moment: time, start: str, end: str) -> bool:
    """Whether a time of day falls in [start, end); a range past midnight (21:00–08:00) wraps."""
    begin, finish = time.fromisoformat(start), time.fromisoformat(end)
    return begin <= moment < finish if begin <= finish else moment >= begin or moment < finish


def diff(timeline: Timeline, verdicts: list[Verdict]) -> list[str]:
    """The timeline with `+` on each message that should not have come and `-` where one was missing."""
    unwanted = {id(e) for v in verdicts for e in v.unwanted}
    rows = [(e.at, 0, ("+ " if id(e) in unwanted else "  ") + timeline.line(e)) for e in timeline.ordered()]
    for v in verdicts:
        if v.missing is not None:
            at, what = v.missing
            rows.append((at, 1, f"- {timeline.local(at):%a %d %b %H:%M}  expected    {what}"))
    return [text for _, _, text in sorted(rows, key=lambda r: r[:2])]


def campaign_test_files(folder: Path) -> list[Path]:
    return sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")])
