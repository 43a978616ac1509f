"""`carecast report`: counts from rows, conversions attributed once, lift with Newcombe's interval, KPI verdicts."""

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError
from sqlalchemy import select

from carecast.campaign.kpis import HouseGuardrails, Kpis, parse_percent
from carecast.campaign.model import Campaign
from carecast.delivery.events import add_event
from carecast.reporting.campaign import as_dict, campaign_report
from carecast.reporting.intervals import newcombe, wilson
from carecast.store.models import Delivery, DeliveryEvent, Enrolment, Event
from tests.factories import deploy

CARECAST = str(Path(sys.executable).with_name("carecast"))
ROOT = Path(__file__).resolve().parent.parent
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "counts, interval",
    [  # Newcombe (1998), Statistics in Medicine 17:873-890, Table II, method 10
        ((56, 70, 48, 80), (0.0524, 0.3339)),
        ((9, 10, 3, 10), (0.1705, 0.8090)),
        ((5, 56, 0, 29), (-0.0381, 0.1926)),
        ((0, 10, 0, 20), (-0.1611, 0.2775)),
    ],
)
def test_the_lift_interval_is_newcombes_hybrid_score_interval_as_the_paper_works_it(counts, interval):
    found = newcombe(*counts)
    assert (round(found.low, 4), round(found.high, 4)) == interval


@given(st.integers(0, 500).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))),
       st.integers(0, 500).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))))  # fmt: skip
def test_intervals_hold_their_estimate_and_stay_in_range(first, second):
    (x1, n1), (x2, n2) = first, second
    rate, difference = wilson(x1, n1), newcombe(x1, n1, x2, n2)
    assert 0 <= rate.low <= rate.high <= 1 and (n1 == 0 or x1 / n1 in rate)
    assert -1 <= difference.low <= difference.high <= 1
    if n1 and n2:
        assert x1 / n1 - x2 / n2 in difference
    if n1 and x1 in (0, n1):  # never a point at 0 % or 100 %, as a z-interval would be
        assert rate.high - rate.low > 0


def test_kpis_are_percentages_and_guardrails_are_ceilings():
    assert parse_percent("4%") == 0.04 and parse_percent("0.5 %") == 0.005 and parse_percent("-1%") == -0.01
    for wrong in (4, "4", "4 percent"):
        with pytest.raises(ValueError, match="is not a percentage; write it with %"):
            parse_percent(wrong)
    with pytest.raises(ValueError, match="'150%' is out of range: a rate is 0% to 100%, a lift -100% to 100%"):
        parse_percent("150%")
    assert Kpis.model_validate({"lift": {"at_least": "-1%"}}).lift.at_least == -0.01  # no worse than the holdout
    with pytest.raises(ValidationError, match="conversion is a rate, 0% to 100%: only a lift may be negative"):
        Kpis.model_validate({"conversion": {"at_least": "-1%"}})
    with pytest.raises(ValidationError, match="unsubscribe_rate is a guardrail: give its ceiling"):
        Kpis.model_validate({"unsubscribe_rate": {"at_least": "1%"}})
    with pytest.raises(ValidationError, match="a KPI has at_least or at_most"):
        Kpis.model_validate({"conversion": {"at_least": "1%", "at_most": "5%"}})


@pytest.mark.parametrize(
    "change, says",
    [
        ({"goal": None}, "a conversion or lift KPI counts goal events: give the campaign a goal"),
        ({"holdout": 0}, "a lift KPI compares with a holdout: give the campaign a holdout"),
        (
            {
                "trigger": None,
                "steps": None,
                "entry": None,
                "audience": {"lifecycle_stage": {"eq": "lapsed"}},
                "send": {"template": "win_back", "channels": ["email"]},
            },
            "conversion and lift count a journey's entries: a broadcast has none to convert",
        ),
    ],
)
def test_a_kpi_the_campaign_cannot_measure_is_refused(change, says):
    document = yaml.safe_load((ROOT / "campaigns" / "win_back.yaml").read_text()) | change
    with pytest.raises(ValidationError, match=says):
        Campaign.model_validate({k: v for k, v in document.items() if v is not None})


def entry(session, contact, at, holdout=False, key=None) -> Enrolment:
    row = Enrolment(campaign_id="win_back", campaign_version=1, contact_id=contact, entry_key=key or contact,
                    workflow_id=f"journey/win_back/{contact}/{key or contact}", holdout=holdout, enrolled_at=at,
                    goal_by=at + timedelta(days=30))  # fmt: skip
    session.add(row)
    return row


def ordered(session, contact, at):
    session.add(Event(event_id=f"order/{contact}/{at:%j%H}", contact_id=contact, name="order_placed", occurred_at=at))


def message(session, n, status, reason=None, channel="email") -> Delivery:
    row = Delivery(idempotency_key=f"k-{n}", workflow_id=f"journey/win_back/c-{n}/c-{n}", campaign_id="win_back",
                   campaign_version=1, category="marketing", step_id="offer", contact_id=f"c-{n}", channel=channel,
                   status=status, reason=reason, sent_at=T0 if status not in ("skipped", "holdout") else None,
                   created_at=T0)  # fmt: skip
    session.add(row)
    session.flush()
    return row


def news(session, delivery, *kinds, reason=None):
    for kind in kinds:
        add_event(session, delivery, kind, T0, reason=reason)


@pytest.fixture
def win_back(sessions, settings):
    """Eleven treated entries (c-6 twice) and four held out; what each was sent and did, as rows."""
    with sessions.begin() as session:
        deploy(session, settings.templates_dir, ROOT / "campaigns" / "win_back.yaml")
        for n in range(1, 11):
            entry(session, f"c-{n}", T0)
        entry(session, "c-6", T0 + timedelta(days=20), key="again")
        for n in range(1, 5):
            entry(session, f"h-{n}", T0, holdout=True)
        ordered(session, "c-1", T0 + timedelta(days=1))
        ordered(session, "c-2", T0 + timedelta(days=29))
        ordered(session, "c-3", T0 - timedelta(days=1))  # before the entry: not a conversion
        ordered(session, "c-4", T0 + timedelta(days=31))  # after its window
        ordered(session, "c-5", T0 + timedelta(days=2))  # twice: one conversion
        ordered(session, "c-5", T0 + timedelta(days=3))
        ordered(session, "c-6", T0 + timedelta(days=25))  # in both of c-6's windows: the later entry's
        ordered(session, "h-1", T0 + timedelta(days=5))
        ordered(session, "x-9", T0 + timedelta(days=5))  # someone who never entered
        sent = [message(session, n, status) for n, status in
                enumerate(["delivered"] * 6 + ["bounced", "sent"], start=1)]  # fmt: skip
        message(session, 9, "skipped", "no_consent")
        message(session, 10, "skipped", "no_consent")
        for n in range(11, 15):
            message(session, n, "holdout", "holdout")
        news(session, sent[0], "deferred", "deferred", reason="quiet_hours")
        news(session, sent[1], "deferred", reason="cap:marketing_weekly")
        for delivered in sent[:6]:
            news(session, delivered, "delivered")
        news(session, sent[0], "opened", "opened", "clicked")
        news(session, sent[1], "opened", "unsubscribed")
        news(session, sent[2], "machine_opened")
        news(session, sent[6], "bounced")


@pytest.mark.store
def test_a_report_counts_rows_attributes_each_conversion_once_and_judges_the_kpis(sessions, win_back):
    with sessions() as session:
        report = campaign_report(
            session, "win_back", HouseGuardrails.model_validate({"bounce_rate": {"at_most": "2%"}})
        )
    [v] = report.versions
    assert (v.entered, v.held_out, v.converted) == (15, 4, 4)  # c-1, c-2, c-5 and c-6's second entry
    [offer] = v.steps
    assert (offer.sent, offer.skipped, offer.held_out) == ({"email": 8}, {"no_consent": 2}, 4)
    assert offer.deferred == {"quiet_hours": 1, "cap:marketing_weekly": 1}  # messages, not deferrals
    assert offer.feedback == {"delivered": 6, "opened": 2, "clicked": 1, "unsubscribed": 1, "machine_opened": 1,
                              "bounced": 1}  # fmt: skip
    lift = v.lift
    assert (lift.treated, lift.treated_converted, lift.held_out, lift.held_out_converted) == (11, 4, 4, 1)
    assert lift.difference == pytest.approx(4 / 11 - 1 / 4) and lift.interval == newcombe(4, 11, 1, 4)
    verdicts = {k.kpi: (k.verdict, k.value) for k in v.kpis}
    assert verdicts["conversion"] == ("met", pytest.approx(4 / 11))  # its interval lies above 4 %
    assert verdicts["lift"][0] == "not enough data yet"  # a holdout of four cannot tell
    assert verdicts["click_rate"] == ("met", pytest.approx(1 / 8))  # clicked emails per email sent
    assert verdicts["bounce_rate"] == ("not enough data yet", pytest.approx(1 / 8))  # under the minimum sample
    assert json.loads(json.dumps(as_dict(report)))["versions"][0]["totals"]["opened"] == 2
    with sessions() as session:  # every open is kept; the second open of a message is not its first
        firsts = session.execute(select(DeliveryEvent.first).where(DeliveryEvent.kind == "opened")).scalars().all()
    assert sorted(firsts) == [False, True, True]


@pytest.mark.store
def test_a_report_since_a_moment_counts_what_happened_after_it(sessions, win_back):
    with sessions.begin() as session:  # late news of a message from before: not the cohort's
        add_event(session, session.get(Delivery, 3), "clicked", T0 + timedelta(days=20))
    with sessions() as session:
        report = campaign_report(session, "win_back", HouseGuardrails(), since=T0 + timedelta(days=10))
    [v] = report.versions
    assert (v.entered, v.converted, v.steps) == (1, 1, [])  # c-6's second entry, and its conversion
    with sessions() as session:
        assert campaign_report(session, "win_back", HouseGuardrails(), version=2) is None


@pytest.mark.store
def test_a_conversion_goes_to_the_latest_entry_whatever_version_is_reported(sessions, settings):
    """c-1 entered under version 1, again under version 2 a day later, then ordered: version 2 converted."""
    with sessions.begin() as session:
        deploy(session, settings.templates_dir, ROOT / "campaigns" / "win_back.yaml")
        document = yaml.safe_load((ROOT / "campaigns" / "win_back.yaml").read_text())
        deploy(session, settings.templates_dir, Campaign.model_validate(document | {"name": "Win-back, take two"}))
        entry(session, "c-1", T0)
        entry(session, "c-1", T0 + timedelta(days=1), key="again").campaign_version = 2
        ordered(session, "c-1", T0 + timedelta(days=2))
    with sessions() as session:
        every = campaign_report(session, "win_back", HouseGuardrails())
        first = campaign_report(session, "win_back", HouseGuardrails(), version=1)
    assert [(v.version, v.converted) for v in every.versions] == [(2, 1), (1, 0)]
    assert [(v.version, v.converted) for v in first.versions] == [(1, 0)]


def test_a_rate_with_more_news_than_messages_is_judged_not_failed():
    assert wilson(3, 2) == wilson(2, 2)  # news of a message being handed over again


def carecast(settings, database_url, *args):
    env = {"PATH": "/usr/bin:/bin", "CARECAST_HOME": str(settings.home), "CARECAST_DATABASE_URL": database_url}
    return subprocess.run([CARECAST, "report", *args], env=env, capture_output=True, text=True, timeout=60, cwd=ROOT)


@pytest.mark.store
def test_carecast_report_prints_a_campaign_a_line_per_campaign_and_json(settings, database_url, win_back):
    one = carecast(settings, database_url, "win_back")
    assert one.returncode == 0, one.stderr
    assert "lift +11.36%" in one.stdout and "Newcombe hybrid score interval (method 10)" in one.stdout
    assert "KPI conversion ≥ 4.00%: 36.36%" in one.stdout and "met" in one.stdout
    every = carecast(settings, database_url)
    assert every.returncode == 0 and "win_back" in every.stdout
    data = json.loads(carecast(settings, database_url, "--json").stdout)
    assert [(c["campaign_id"], c["versions"][0]["totals"]["sent"]) for c in data] == [("win_back", 8)]


@pytest.mark.store
@pytest.mark.parametrize(
    "args, says",
    [
        (["nothing_like_it"], "nothing_like_it was never deployed: nothing to report"),
        (["win_back", "--version", "7"], "win_back was never deployed as version 7"),
        (["--since", "a week"], "--since 'a week'"),
    ],
)
def test_carecast_report_says_what_it_cannot_report(settings, database_url, win_back, args, says):
    done = carecast(settings, database_url, *args)
    assert done.returncode == 1 and says in done.stderr, done.stderr


@pytest.mark.store
def test_a_message_counts_once_a_kind_and_a_deferral_once_a_reason(sessions):
    with sessions.begin() as session:
        sent = message(session, 1, "bounced")
        for kind, reason in (("bounced", "blocked"), ("bounced", "bounce"), ("deferred", "quiet_hours"),
                             ("deferred", "cap:marketing_daily"), ("deferred", "quiet_hours")):  # fmt: skip
            add_event(session, sent, kind, T0, reason=reason)
    with sessions() as session:
        rows = session.execute(select(DeliveryEvent.kind, DeliveryEvent.first).order_by(DeliveryEvent.id)).all()
    assert [tuple(r) for r in rows] == [("bounced", True), ("bounced", False), ("deferred", True), ("deferred", True),
                                        ("deferred", False)]  # fmt: skip
