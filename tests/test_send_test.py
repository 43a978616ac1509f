"""`carecast send-test`: one message to yourself, as a contact would get it, marked [TEST], outside the ledger."""

import email
import subprocess
import sys
from email.policy import default as email_policy
from pathlib import Path

import pytest
from sqlalchemy import func, select

from carecast.store.models import Delivery
from tests.factories import add_contact

pytestmark = pytest.mark.store

CARECAST = str(Path(sys.executable).with_name("carecast"))
ROOT = Path(__file__).resolve().parent.parent


def send_test(settings, database_url, *args):
    env = {"PATH": "/usr/bin:/bin", "CARECAST_HOME": str(settings.home), "CARECAST_DATABASE_URL": database_url,
           "CARECAST_SECRET_KEY": "k" * 32}  # fmt: skip
    return subprocess.run([CARECAST, "send-test", *args], env=env, capture_output=True, text=True, timeout=60,
                          cwd=ROOT)  # fmt: skip


def test_a_test_goes_to_the_address_given_marked_with_sample_links_and_counts_nowhere(settings, database_url, sessions):
    with sessions.begin() as session:
        grace = {"first_name": "Grace", "wishlist_item": "the red kettle"}
        add_contact(session, "c-1", email="ada@example.com", attributes=grace)
    done = send_test(settings, database_url, "back_in_stock", "--to", "Marketer@Example.com", "--contact", "c-1")
    assert done.returncode == 0, done.stderr
    [sent] = settings.outbox_dir.glob("*.eml")
    message = email.message_from_bytes(sent.read_bytes(), policy=email_policy)
    assert message["To"] == "Marketer@example.com" and message["Subject"] == "[TEST] the red kettle is back in stock"
    body = message.get_body(("plain",)).get_content()
    assert "Hi Grace" in body and "https://care.example.com/u/" in body  # sample links: they open nothing
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Delivery)) == 0
    sms = send_test(settings, database_url, "back_in_stock", "--to", "+14155550199")
    assert sms.returncode == 0 and "sent test  sms to +14155550199" in sms.stdout
    [text] = settings.outbox_dir.glob("*-sms.txt")
    assert "TEST: " in text.read_text()


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["back_in_stock", "--to", "nope"], "--to: phone: invalid phone 'nope'"),
        (["win_back", "--to", "+14155550199"], "win_back sends no sms at any step"),
        (["no_such", "--to", "a@example.com"], "no campaign 'no_such'"),
        (["back_in_stock", "--to", "a@example.com", "--contact", "c-404"], "no contact with id 'c-404'"),
    ],
)
def test_what_cannot_be_sent_is_said_and_nothing_goes(settings, database_url, sessions, args, says):
    done = send_test(settings, database_url, *args)
    assert done.returncode == 1 and says in done.stderr and "Traceback" not in done.stderr
    assert not settings.outbox_dir.exists() or not any(settings.outbox_dir.iterdir())
