"""A campaign's report: what each version and step did, from rows, by SQL.

Three kinds of row, each written where the ledger already writes:
- `deliveries`: one per message meant, with the step's outcome (sent and on which channel,
  skipped and why, held out, failed) as its status and reason;
- `delivery_events`: what happened to a message after (delivered, bounced, opened by a person
  or by a machine, clicked, unsubscribed, complained, replied) and each deferral with its reason;
- `enrolments`: who entered a journey, as holdout or not, and how the journey ended.

Conversions count goal events: an event of the goal's name that happened between an entry
and the end of its goal window (`enrolments.goal_by`) converts that entry. One event converts
one entry of a campaign at most — the latest entry whose window held it, among all the
campaign's versions with that goal — and an entry converts once however many goal events
follow. Conversion is among treated entries, every one, sent to or not and whether or not its
journey ended before the goal; holdout entries convert the same way, so treated minus holdout
conversion is a fair lift, given with Newcombe's interval (carecast/reporting/intervals.py).

Rates count messages among the messages sent (handed to a provider): opens and clicks per
email sent, unsubscribes, complaints and bounces per message sent. `since` takes a cohort:
the entries and messages made since then, with their news whenever it came.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, distinct, func, select
from sqlalchemy.orm import Session

from carecast.campaign.kpis import HouseGuardrails, Kpis, Target
from carecast.campaign.model import Campaign
from carecast.delivery.ledger import HANDED_OVER, Status
from carecast.reporting.intervals import Interval, newcombe, wilson
from carecast.reporting.verdicts import NOT_YET, Breach, Verdict, judge
from carecast.store.house_rules import newest_house_spec
from carecast.store.models import (
    CampaignControl,
    CampaignVersion,
    Delivery,
    DeliveryEvent,
    Enrolment,
    Event,
    GuardrailBreach,
)

NEWCOMBE = "Newcombe hybrid score interval (method 10), 95 %"
# Each guardrail, and the news whose messages it counts.
GUARDRAIL_NEWS = {"unsubscribe_rate": "unsubscribed", "complaint_rate": "complained", "bounce_rate": "bounced"}
# What a version's totals count: messages handed over, and messages with each kind of news.
TOTALS = ("sent", "delivered", "bounced", "opened", "machine_opened", "clicked", "unsubscribed", "complained",
          "replied")  # fmt: skip


@dataclass
class StepReport:
    step: str
    sent: dict[str, int] = field(default_factory=dict)  # channel → messages handed over
    skipped: dict[str, int] = field(default_factory=dict)  # reason → messages
    deferred: dict[str, int] = field(default_factory=dict)  # reason → messages deferred at least once for it
    held_out: int = 0
    failed: int = 0
    waiting: int = 0  # not settled yet: reserved, deferred or being handed over now
    feedback: dict[str, int] = field(default_factory=dict)  # delivered, opened, clicked, ... → messages

    @property
    def handed_over(self) -> int:
        return sum(self.sent.values())

    @property
    def emails_sent(self) -> int:
        """What open and click rates count against."""
        return self.sent.get("email", 0)


@dataclass
class Lift:
    treated: int
    treated_converted: int
    held_out: int
    held_out_converted: int
    difference: float | None
    interval: Interval
    method: str = NEWCOMBE


@dataclass
class VersionReport:
    version: int
    deployed_at: datetime | None
    entered: int = 0  # journeys entered (treated and holdout); a broadcast's contacts in its runs
    held_out: int = 0
    ended: dict[str, int] = field(default_factory=dict)  # how journeys ended → how many
    converted: int = 0  # treated entries that reached the goal in its window
    steps: list[StepReport] = field(default_factory=list)
    lift: Lift | None = None
    kpis: list[Verdict] = field(default_factory=list)

    def total(self, name: str) -> int:
        """A feedback count (delivered, opened, ...) over the steps; `sent` is the messages handed over."""
        if name == "sent":
            return sum(s.handed_over for s in self.steps)
        return sum(s.feedback.get(name, 0) for s in self.steps)


@dataclass
class CampaignReport:
    campaign_id: str
    name: str
    category: str
    since: datetime | None
    versions: list[VersionReport]
    state: str = "running"  # or paused, stopped: an operator's or a guardrail's hold
    state_reason: str | None = None
    breaches: list[Breach] = field(default_factory=list)

    def total(self, name: str) -> int:
        return sum(v.total(name) for v in self.versions)


def campaign_report(
    session: Session,
    campaign_id: str,
    house: HouseGuardrails,
    version: int | None = None,
    since: datetime | None = None,
) -> CampaignReport | None:
    """The report of a deployed campaign (None if it was never deployed), per version, newest first."""
    versions = session.execute(
        select(CampaignVersion.version, CampaignVersion.spec, CampaignVersion.deployed_at)
        .where(CampaignVersion.campaign_id == campaign_id, *_version(CampaignVersion.version, version))
        .order_by(CampaignVersion.version.desc())
    ).all()
    if not versions:
        return None
    specs = {v: Campaign.model_validate(spec) for v, spec, _ in versions}
    reports = {v: VersionReport(v, at) for v, _, at in versions}
    steps: dict[tuple[int, str], StepReport] = {}

    def step(v: int, step_id: str) -> StepReport:
        return steps.setdefault((v, step_id), StepReport(step_id))

    for v, step_id, channel, status, reason, count in session.execute(_outcomes(campaign_id, version, since)):
        if v not in reports:
            continue
        row = step(v, step_id)
        if status in HANDED_OVER:
            row.sent[channel or "?"] = row.sent.get(channel or "?", 0) + count
        elif status == Status.SKIPPED:
            row.skipped[reason or "?"] = row.skipped.get(reason or "?", 0) + count
        elif status == Status.HOLDOUT:
            row.held_out += count
        elif status == Status.FAILED:
            row.failed += count
        else:
            row.waiting += count
    for v, step_id, kind, reason, count in session.execute(_feedback(campaign_id, version, since)):
        if v not in reports:
            continue
        row = step(v, step_id)
        if kind == "deferred":
            row.deferred[reason or "?"] = row.deferred.get(reason or "?", 0) + count
        else:
            row.feedback[kind] = row.feedback.get(kind, 0) + count
    for (v, _), row in sorted(steps.items(), key=lambda item: _step_order(specs[item[0][0]], item[0][1])):
        reports[v].steps.append(row)
    entered: dict[int, dict[bool, int]] = defaultdict(lambda: {False: 0, True: 0})
    for v, holdout, ended_by, count in session.execute(_entries(campaign_id, version, since)):
        if v not in reports:
            continue
        entered[v][bool(holdout)] += count
        if ended_by:
            reports[v].ended[ended_by] = reports[v].ended.get(ended_by, 0) + count
    converted: dict[int, dict[bool, int]] = defaultdict(lambda: {False: 0, True: 0})
    for goal, with_goal in _versions_by_goal(session, campaign_id).items():
        for v, holdout, count in session.execute(_conversions(campaign_id, goal, with_goal, version, since)):
            if v in reports:
                converted[v][bool(holdout)] += count
    for v, report in reports.items():
        spec = specs[v]
        report.held_out = entered[v][True]
        if spec.is_journey:
            report.entered = entered[v][False] + entered[v][True]
            report.converted = converted[v][False]
        else:
            report.entered = sum(s.handed_over + s.held_out + s.failed + s.waiting + sum(s.skipped.values())
                                 for s in report.steps)  # fmt: skip
        if spec.goal is not None and spec.holdout > 0:
            report.lift = _lift(entered[v], converted[v])
        report.kpis = kpi_verdicts(report, spec.kpis, house, entered[v][False])
    newest = specs[versions[0][0]]
    found = session.scalars(
        select(GuardrailBreach).where(GuardrailBreach.campaign_id == campaign_id).order_by(GuardrailBreach.id)
    )
    breaches = [Breach(b.campaign_id, b.campaign_version, b.kpi, b.value, b.ceiling, b.hits, b.trials, b.action,
                       b.found_at) for b in found]  # fmt: skip
    report = CampaignReport(campaign_id, newest.name, newest.category, since, list(reports.values()), breaches=breaches)
    if (control := session.get(CampaignControl, campaign_id)) is not None:
        report.state, report.state_reason = control.state, control.reason
    return report


def _step_order(spec: Campaign, step_id: str) -> tuple[int, str]:
    order = [step for step, _ in spec.sends()]
    return (order.index(step_id) if step_id in order else len(order), step_id)


def _versions_by_goal(session: Session, campaign_id: str) -> dict[str, list[int]]:
    """Goal event → the campaign's versions (all, not only those reported) that have it."""
    found: dict[str, list[int]] = defaultdict(list)
    for version, spec in session.execute(
        select(CampaignVersion.version, CampaignVersion.spec).where(CampaignVersion.campaign_id == campaign_id)
    ):
        if (goal := (spec or {}).get("goal")) is not None:
            found[goal["event"]].append(version)
    return found


def _lift(entered: dict[bool, int], converted: dict[bool, int]) -> Lift:
    n1, x1, n2, x2 = entered[False], converted[False], entered[True], converted[True]
    difference = x1 / n1 - x2 / n2 if n1 and n2 else None
    return Lift(n1, x1, n2, x2, difference, newcombe(x1, n1, x2, n2))


def kpi_verdicts(report: VersionReport, kpis: Kpis | None, house: HouseGuardrails, treated: int) -> list[Verdict]:
    """Each KPI the version set, and each guardrail (its own ceiling or the house's), with its verdict."""
    kpis = kpis or Kpis()
    emails = sum(s.emails_sent for s in report.steps)
    rates: dict[str, tuple[int, int]] = {
        "conversion": (report.converted, treated),
        "open_rate": (report.total("opened"), emails),
        "click_rate": (report.total("clicked"), emails),
    }
    verdicts = []
    for name in ("conversion", "lift", "open_rate", "click_rate"):
        target: Target | None = getattr(kpis, name)
        if target is None or (name == "lift" and report.lift is None):
            continue
        if name == "lift":
            verdicts.append(judge(name, target, report.lift.difference, report.lift.interval))
        else:
            hits, trials = rates[name]
            verdicts.append(judge(name, target, hits / trials if trials else None, wilson(hits, trials)))
    news = {kind: report.total(kind) for kind in GUARDRAIL_NEWS.values()}
    return verdicts + guardrail_verdicts(report.total("sent"), news, kpis, house)


def guardrail_target(name: str, kpis: Kpis | None, house: HouseGuardrails) -> Target | None:
    """A guardrail's ceiling: the campaign's own, or the house's."""
    return (kpis and getattr(kpis, name)) or getattr(house, name)


def guardrail_verdicts(sent: int, news: dict[str, int], kpis: Kpis | None, house: HouseGuardrails) -> list[Verdict]:
    """Each guardrail's verdict from the messages sent and how many of them had its news (`GUARDRAIL_NEWS`); none
    is judged before `house.min_sample` messages went out. The report and the watch that pauses judge alike."""
    verdicts = []
    for name, kind in GUARDRAIL_NEWS.items():
        if (target := guardrail_target(name, kpis, house)) is None:
            continue
        hits = news.get(kind, 0)
        verdict = judge(name, target, hits / sent if sent else None, wilson(hits, sent), hits, sent)
        if sent < house.min_sample:
            verdict = replace(verdict, verdict=NOT_YET, note=f"{sent} of the {house.min_sample} sent it waits for")
        verdicts.append(verdict)
    return verdicts


def _since(column: Any, since: datetime | None) -> list[Any]:
    return [column >= since] if since is not None else []


def _version(column: Any, version: int | None) -> list[Any]:
    return [column == version] if version is not None else []


def _outcomes(campaign_id: str, version: int | None, since: datetime | None):
    d = Delivery
    return (
        select(d.campaign_version, d.step_id, d.channel, d.status, d.reason, func.count())
        .where(d.campaign_id == campaign_id, *_version(d.campaign_version, version), *_since(d.created_at, since))
        .group_by(d.campaign_version, d.step_id, d.channel, d.status, d.reason)
    )


def _feedback(campaign_id: str, version: int | None, since: datetime | None):
    """(version, step, kind, reason, messages): the news of the messages reported, whenever it came."""
    e = DeliveryEvent
    query = (
        select(e.campaign_version, e.step_id, e.kind, e.reason, func.count())
        .where(e.campaign_id == campaign_id, e.first, *_version(e.campaign_version, version))
        .group_by(e.campaign_version, e.step_id, e.kind, e.reason)
    )
    if since is not None:  # the cohort: messages made since then
        query = query.join(Delivery, Delivery.id == e.delivery_id).where(Delivery.created_at >= since)
    return query


def _entries(campaign_id: str, version: int | None, since: datetime | None):
    n = Enrolment
    return (
        select(n.campaign_version, n.holdout, n.ended_by, func.count())
        .where(n.campaign_id == campaign_id, *_version(n.campaign_version, version), *_since(n.enrolled_at, since))
        .group_by(n.campaign_version, n.holdout, n.ended_by)
    )


def _conversions(campaign_id: str, goal: str, with_goal: list[int], version: int | None, since: datetime | None):
    """(version, holdout, entries converted): each goal event to the latest entry whose window held it, among
    the entries of every version with this goal; then the entries reported are counted."""
    n, ev = Enrolment, Event
    latest = func.row_number().over(partition_by=ev.id, order_by=(n.enrolled_at.desc(), n.id.desc()))
    pairs = (
        select(n.id.label("entry"), n.campaign_version, n.holdout, n.enrolled_at, latest.label("rank"))
        .join(
            ev,
            and_(
                ev.contact_id == n.contact_id,
                ev.name == goal,
                ev.occurred_at >= n.enrolled_at,
                ev.occurred_at <= n.goal_by,
            ),
        )  # fmt: skip
        .where(n.campaign_id == campaign_id, n.campaign_version.in_(with_goal))
        .subquery()
    )
    return (
        select(pairs.c.campaign_version, pairs.c.holdout, func.count(distinct(pairs.c.entry)))
        .where(pairs.c.rank == 1, *_version(pairs.c.campaign_version, version), *_since(pairs.c.enrolled_at, since))
        .group_by(pairs.c.campaign_version, pairs.c.holdout)
    )


def reported_campaigns(session: Session) -> list[str]:
    """Every campaign ever deployed, by id."""
    return list(session.scalars(select(CampaignVersion.campaign_id).distinct().order_by(CampaignVersion.campaign_id)))


def house_guardrails(session: Session, fallback: HouseGuardrails) -> HouseGuardrails:
    """The guardrails of the newest deployed policy.yaml (`fallback`, the local file's, before any deploy)."""
    deployed = newest_house_spec(session)
    return deployed.guardrails if deployed is not None else fallback


def as_dict(report: CampaignReport) -> dict[str, Any]:
    """The report as `--json` prints it: plain data, rates as fractions, times in ISO 8601 UTC."""

    def plain(value: Any) -> Any:
        if isinstance(value, datetime):
            return value.isoformat()
        if isinstance(value, Interval):
            return [value.low, value.high]
        if isinstance(value, list):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if hasattr(value, "__dataclass_fields__"):
            return {k: plain(getattr(value, k)) for k in value.__dataclass_fields__}
        return value

    document = plain(report)
    for version, data in zip(report.versions, document["versions"], strict=True):
        data["totals"] = {name: version.total(name) for name in TOTALS}
    return document


def sends_per_day(session: Session, campaign_id: str, days: int = 60) -> tuple[list[str], dict[str, list[int]]]:
    """The last `days` days up to the campaign's latest send: (days, channel → messages sent each day)."""
    d = Delivery
    sent = [d.campaign_id == campaign_id, d.status.in_(HANDED_OVER), d.sent_at.is_not(None)]
    latest = session.scalar(select(func.max(d.sent_at)).where(*sent))
    if latest is None:
        return [], {}
    first = (latest - timedelta(days=days - 1)).replace(hour=0, minute=0, second=0, microsecond=0)
    rows = session.execute(
        select(func.date(d.sent_at), d.channel, func.count()).where(*sent, d.sent_at >= first)
        .group_by(func.date(d.sent_at), d.channel)
    ).all()  # fmt: skip
    labels = [str((first + timedelta(days=n)).date()) for n in range((latest.date() - first.date()).days + 1)]
    by_channel: dict[str, list[int]] = defaultdict(lambda: [0] * len(labels))
    for day, channel, count in rows:
        by_channel[channel or "?"][labels.index(str(day)[:10])] += count
    return labels, dict(by_channel)
