"""`carecast report pressure`: messages per contact over 30 days, across campaigns, against the ceiling."""

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from carecast.reporting.pressure import percentile, pressure
from carecast.store.models import Delivery
from tests.factories import add_contact

CARECAST = str(Path(sys.executable).with_name("carecast"))
ROOT = Path(__file__).resolve().parent.parent
NOW = datetime.now(UTC)  # the CLI judges by its own now: the rows are days from it
CEILING = {"max": 20, "per": "30d"}


def test_percentiles_are_nearest_rank():
    assert percentile([], 0.5) == 0
    assert [percentile(list(range(1, 101)), share) for share in (0.5, 0.95, 1.0)] == [50, 95, 100]
    assert percentile([0, 0, 0, 7], 0.5) == 0 and percentile([0, 0, 0, 7], 0.95) == 7


@pytest.fixture
def busy(sessions):
    """Four contacts: one got nothing, one 17 care and marketing messages (85 % of 20), the rest a few."""
    n = 0

    def sent(session, contact, campaign, category, count, days_ago=1, status="sent"):
        nonlocal n
        for _ in range(count):
            n += 1
            session.add(Delivery(idempotency_key=f"k-{n}", workflow_id="w", campaign_id=campaign, campaign_version=1,
                                 category=category, step_id="s", contact_id=contact, channel="email", status=status,
                                 sent_at=NOW - timedelta(days=days_ago)))  # fmt: skip

    with sessions.begin() as session:
        for contact in ("c-1", "c-2", "c-3", "c-4"):
            add_contact(session, contact, email=f"{contact}@example.com", phone=None)
        sent(session, "c-1", "news", "marketing", 12)
        sent(session, "c-1", "delivery_delay", "care", 5)
        sent(session, "c-1", "order_confirmation", "transactional", 9)  # never counted by the ceiling
        sent(session, "c-2", "news", "marketing", 2)
        sent(session, "c-2", "news", "marketing", 4, days_ago=40)  # before the window
        sent(session, "c-3", "order_confirmation", "transactional", 1)
        sent(session, "c-3", "news", "marketing", 3, status="skipped")  # never handed over


@pytest.mark.store
def test_pressure_spreads_messages_per_contact_and_finds_who_is_near_the_ceiling(sessions, busy):
    with sessions() as session:
        report = pressure(session, NOW, CEILING)
    assert (report.contacts, report.reached) == (4, 3)
    assert report.spread["all"].__dict__ == {"p50": 1, "p95": 26, "max": 26}  # 0, 1, 2, 26
    assert report.spread["marketing"].__dict__ == {"p50": 0, "p95": 12, "max": 12}
    assert report.near_ceiling == 1  # c-1: 17 care and marketing messages, 16 or more is 80 % of 20
    assert [(c["campaign_id"], c["messages"]) for c in report.campaigns] == [
        ("news", 14), ("order_confirmation", 10), ("delivery_delay", 5)]  # fmt: skip
    assert report.campaigns[0]["share"] == pytest.approx(14 / 29)


@pytest.mark.store
def test_carecast_report_pressure_prints_and_gives_json(settings, database_url, busy):
    env = {"PATH": "/usr/bin:/bin", "CARECAST_HOME": str(settings.home), "CARECAST_DATABASE_URL": database_url}
    shown = subprocess.run([CARECAST, "report", "pressure"], env=env, capture_output=True, text=True, timeout=60,
                           cwd=ROOT)  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    assert "1 contacts at 80% of the global ceiling (20 per 30d) or more" in shown.stdout
    data = json.loads(subprocess.run([CARECAST, "report", "pressure", "--json"], env=env, capture_output=True,
                                     text=True, timeout=60, cwd=ROOT).stdout)  # fmt: skip
    assert (data["contacts"], data["reached"], data["ceiling"]) == (4, 3, CEILING)
