"""A contact's rights from the command line: links revoked, data exported, the contact forgotten."""

import subprocess
import sys
from pathlib import Path

import pytest

from carecast.store.models import Contact
from tests.factories import add_contact

pytestmark = pytest.mark.store

CARECAST = str(Path(sys.executable).with_name("carecast"))


def carecast(settings, database_url, *args):
    env = {"PATH": "/usr/bin:/bin", "CARECAST_HOME": str(settings.home), "CARECAST_DATABASE_URL": database_url,
           "CARECAST_SECRET_KEY": "k" * 32}  # fmt: skip
    return subprocess.run([CARECAST, *args], env=env, capture_output=True, text=True, timeout=60)


def test_revoking_links_moves_the_contact_to_a_new_link_version(settings, database_url, sessions):
    with sessions.begin() as session:
        add_contact(session, "c-1")
    done = carecast(settings, database_url, "contacts", "revoke-links", "c-1")
    assert done.returncode == 0 and "version 1" in done.stdout
    with sessions() as session:
        assert session.get(Contact, "c-1").links_version == 1
    unknown = carecast(settings, database_url, "contacts", "revoke-links", "c-404")
    assert unknown.returncode == 1 and "no contact 'c-404'" in unknown.stderr
