"""`carecast deliveries list`: the messages that need a human, with why, from the store."""

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from carecast.store.models import Delivery, utcnow
from tests.factories import add_contact

pytestmark = pytest.mark.store

CARECAST = str(Path(sys.executable).with_name("carecast"))


def row(n, status, reason=None, campaign_id="order_confirmation", category="transactional", minutes_ago=0, **said):
    history = [{"status": "sending"}, {"status": status, "reason": reason, **said}]
    return Delivery(
        idempotency_key=f"k-{n}", workflow_id=f"journey/{campaign_id}/c-1/e-{n}", campaign_id=campaign_id,
        campaign_version=1, category=category, step_id="confirm", contact_id="c-1", channel="email", status=status,
        reason=reason, status_history=history, updated_at=utcnow() - timedelta(minutes=minutes_ago),
    )  # fmt: skip


def deliveries(tmp_path, database_url, *args):
    env = {**os.environ, "CARECAST_HOME": str(tmp_path / "home"), "CARECAST_DATABASE_URL": database_url}
    return subprocess.run([CARECAST, "deliveries", "list", *args], env=env, capture_output=True, text=True, timeout=60)


def test_lists_uncertain_and_failed_messages_newest_first_with_why(sessions, tmp_path, database_url):
    with sessions.begin() as session:
        add_contact(session)
        session.add_all([
            row(1, "uncertain", "no_answer", error="SendGrid did not answer after the request was sent", minutes_ago=5),
            row(2, "failed", "provider_auth_failed", minutes_ago=1),
            row(3, "sent"),
            row(4, "uncertain", "no_answer", campaign_id="win_back", category="marketing", minutes_ago=3),
        ])  # fmt: skip
    done = deliveries(tmp_path, database_url)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert [line.split()[3] for line in lines[:-1]] == [
        "failed:provider_auth_failed", "uncertain:no_answer", "uncertain:no_answer"
    ]  # fmt: skip
    assert "SendGrid did not answer after the request was sent" in lines[2] and lines[-1] == "3 message(s) need a human"

    only = json.loads(
        deliveries(tmp_path, database_url, "--status", "uncertain", "--campaign", "win_back", "--json").stdout
    )
    assert [(d["status"], d["campaign_id"], d["category"]) for d in only] == [("uncertain", "win_back", "marketing")]


def test_a_status_that_needs_no_human_is_refused_with_the_ones_that_do(tmp_path, database_url, engine):
    done = deliveries(tmp_path, database_url, "--status", "sent")
    assert done.returncode == 1 and "--status sent: use uncertain or failed" in done.stderr
