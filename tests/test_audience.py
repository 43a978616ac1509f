"""`carecast audience CAMPAIGN`: whom a broadcast would reach now and what the policy would do, writing nothing."""

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from carecast.store.models import Delivery, Preferences
from tests.factories import add_contact, deploy

pytestmark = pytest.mark.store

CARECAST = str(Path(sys.executable).with_name("carecast"))
VIP_NEWS = ("id: vip_news\nname: VIP news\ncategory: marketing\ntopic: tips\naudience: {attributes.vip: {eq: true}}\n"
            "send: {template: welcome_tips, channels: [email, sms], max_hold: 2d}\n")  # fmt: skip
# House rules without quiet hours, so what the test sees does not hang on the hour it runs at.
POLICY = "timezone: UTC\nemail: {from: Acme <care@acme.example>, postal_address: '1 Main St, Springfield'}\n"


def test_the_dry_run_counts_what_the_policy_would_do_and_writes_nothing(settings, database_url, sessions, tmp_path):
    campaigns = tmp_path / "campaigns"
    campaigns.mkdir()
    (campaigns / "policy.yaml").write_text(POLICY)
    campaign = campaigns / "vip_news.yaml"
    campaign.write_text(VIP_NEWS)
    vip = {"first_name": "Vi", "vip": True}
    with sessions.begin() as session:
        deploy(session, settings.templates_dir, campaign)
        add_contact(session, "c-email", attributes=vip, timezone="UTC")
        add_contact(session, "c-sms", email=None, sms_consent=True, attributes=vip, timezone="UTC")
        add_contact(session, "c-none", email_consent=False, attributes=vip, timezone="UTC")
        add_contact(session, "c-left", attributes=vip, timezone="UTC")
        add_contact(session, "c-night", attributes=vip, timezone="UTC")
        add_contact(session, "c-plain", attributes={"vip": "true"}, timezone="UTC")  # text: not in the audience
    with sessions.begin() as session:
        session.get(Preferences, "c-left").topics = {"tips": False}
        night = session.get(Preferences, "c-night")
        now = datetime.now(UTC)  # quiet from an hour ago until two hours on, in UTC, its zone
        night.quiet_hours_start = f"{now - timedelta(hours=1):%H:%M}"
        night.quiet_hours_end = f"{now + timedelta(hours=2):%H:%M}"
    env = {"PATH": "/usr/bin:/bin", "CARECAST_HOME": str(settings.home), "CARECAST_DATABASE_URL": database_url,
           "CARECAST_CAMPAIGNS_DIR": str(campaigns)}  # fmt: skip
    done = subprocess.run([CARECAST, "audience", "vip_news", "--json"], env=env, capture_output=True, text=True,
                          timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    counts = json.loads(done.stdout)
    assert counts["matched"] == 5 and counts["send"] == {"email": 1, "sms": 1}
    assert counts["skipped"] == {"no_consent": 1, "topic_unsubscribed": 1}
    assert counts["deferred"] == {"quiet_hours": 1}  # c-night waits for the end of its own quiet hours
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Delivery)) == 0
    words = subprocess.run([CARECAST, "audience", "vip_news"], env=env, capture_output=True, text=True, timeout=60)
    assert "vip_news: 5 contact(s) match its audience" in words.stdout and "would send now   " in words.stdout


def test_house_rules_it_cannot_read_are_named_not_a_traceback(settings, database_url, sessions, tmp_path):
    campaigns = tmp_path / "campaigns"
    campaigns.mkdir()
    (campaigns / "policy.yaml").write_text(POLICY)
    (campaigns / "vip_news.yaml").write_text(VIP_NEWS)
    with sessions.begin() as session:
        deploy(session, settings.templates_dir, campaigns / "vip_news.yaml")
    (campaigns / "policy.yaml").write_text("quiet_hours: {start: '25:00', end: '08:00'}\n")  # broken since
    env = {"PATH": "/usr/bin:/bin", "CARECAST_HOME": str(settings.home), "CARECAST_DATABASE_URL": database_url,
           "CARECAST_CAMPAIGNS_DIR": str(campaigns)}  # fmt: skip
    done = subprocess.run([CARECAST, "audience", "vip_news"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "the house rules cannot be read" in done.stderr and "Traceback" not in done.stderr
