"""The short version of bench/faults.py, on the store under test: a broadcast and a stream of journeys
through a worker killed mid-run and a provider answering 503 to a third of its requests.

Real dev server (file-backed), two `carecast worker` processes, the fake SendGrid checking every request;
counted at the fake and in the store. A kill that lands between a hand-over and its record is the case
that makes duplicates possible; the counts say where they may be and that nothing is lost.
"""

import os

import pytest

from bench.faults import Plan, run

pytestmark = pytest.mark.integration

SHORT = Plan(contacts=3000, journeys=30, stream_seconds=6, kills=1, chaos_seconds=10, late=0.0, unavailable=0.3,
             burst=False, database=False, temporal_restart=False)  # fmt: skip


async def test_a_worker_kill_and_provider_errors_lose_nothing_and_send_no_marketing_twice(capsys):
    held, tallies = await run(SHORT, os.environ.get("CARECAST_TEST_POSTGRES_URL"), deadline=300)
    report = capsys.readouterr().out
    assert held, report
    assert all(t.lost == 0 for t in tallies.values()), report
    assert tallies["marketing"].more == 0, report
    # One kill leaves at most one page's request in doubt (no send rates here: a page is one request of 1,000).
    assert tallies["marketing"].once >= 2000, report
    assert all(t.once + t.more == t.intended for c, t in tallies.items() if c != "marketing"), report
