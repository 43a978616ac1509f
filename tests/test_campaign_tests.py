"""Campaign tests (`carecast test`, campaigns/tests/*.yaml): what they check, and how a failure reads."""

import re
import subprocess
import sys
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from carecast.campaign.documents import load_model
from carecast.campaign.house_rules import POLICY_FILE, HouseRulesSpec
from carecast.campaign.load import load_campaigns
from carecast.simulation.expectations import (
    CampaignTest,
    ExpectAtMost,
    ExpectMessage,
    campaign_test_files,
    check,
    diff,
    in_hours,
    unknown_names,
)
from carecast.simulation.timeline import Entry, Timeline

CARECAST = str(Path(sys.executable).with_name("carecast"))
ROOT = Path(__file__).resolve().parent.parent
START = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)  # 10:00 in Paris


def sent(hours: float, campaign="news", step="send", category="marketing", channel="email") -> Entry:
    return Entry(START + timedelta(hours=hours), "sent", campaign, step, channel, '"Hello"', category)


def timeline(*entries: Entry) -> Timeline:
    return Timeline("ada", ZoneInfo("Europe/Paris"), START, START + timedelta(weeks=2), entries=list(entries))


def expectation(**written):
    test = {"contact": {"id": "ada"}, "events": [{"event": "account_closed", "at": "15h"}], "expect": [written]}
    return CampaignTest.model_validate(test).expect[0]


clock = st.times().map(lambda t: t.replace(second=0, microsecond=0))


@given(clock, clock, clock)
def test_a_time_is_in_exactly_one_of_two_complementary_ranges(moment: time, a: time, b: time):
    start, end = f"{a:%H:%M}", f"{b:%H:%M}"
    if start == end:
        assert not in_hours(moment, start, end)
    else:
        assert in_hours(moment, start, end) != in_hours(moment, end, start)


def test_a_message_expectation_checks_what_when_and_how_many():
    tl = timeline(sent(25), sent(30, step="other"))
    assert not check(expectation(message={"campaign": "news", "step": "send", "within": ["1d", "2d"]}), tl).problem
    assert not check(expectation(message={"step": "send", "local": ["11:00", "12:00"], "count": 1}), tl).problem
    missing = check(expectation(message={"step": "send", "within": ["0d", "1d"]}), tl)
    assert missing.problem == "expected send, 0s to 1d after the start; 0 came"
    assert missing.missing == (START, "send, 0s to 1d after the start")
    too_many = check(expectation(message={"campaign": "news", "count": 1}), tl)
    assert too_many.problem == "expected 1 × news; 2 came" and too_many.unwanted == [tl.entries[1]]


def test_rules_about_what_must_never_happen():
    night = sent(13)  # 23:00 in Paris
    tl = timeline(sent(1), night, sent(24, category="transactional", campaign="orders"),
                  Entry(START + timedelta(hours=15), "event", detail="account_closed"))  # fmt: skip
    quiet = check(expectation(quiet={"start": "21:00", "end": "08:00", "categories": ["marketing"]}), tl)
    assert quiet.problem == "expected no marketing message at 21:00–08:00 local time" and quiet.unwanted == [night]
    assert not check(expectation(quiet={"start": "21:00", "end": "08:00", "campaign": "orders"}), tl).problem
    after = check(expectation(nothing_after={"event": "account_closed"}), tl)
    assert after.unwanted == [tl.entries[2]]
    assert not check(expectation(nothing_after={"event": "account_closed", "categories": ["marketing"]}), tl).problem
    assert not check(expectation(no_message={"channel": "sms"}), tl).problem
    assert check(expectation(no_message={"campaign": "orders"}), tl).unwanted == [tl.entries[2]]


def test_at_most_counts_as_the_policy_does_and_may_count_other_categories():
    care = [sent(h, campaign="care", category="care") for h in (1, 2)]
    marketing = [sent(3), sent(30)]
    tl = timeline(*care, *marketing)
    assert not check(expectation(at_most={"messages": 1, "per": "1d", "categories": ["marketing"]}), tl).problem
    over = check(expectation(at_most={"messages": 2, "per": "1d", "categories": ["marketing"],
                                      "counting": ["marketing", "care"]}), tl)  # fmt: skip
    assert over.unwanted == [marketing[0]]  # two care messages were in the day before it; the next day's is fine
    assert "counting marketing and care; 1 went over it" in over.problem


def test_a_failure_reads_as_a_diff_of_the_timeline():
    night = sent(13)
    tl = timeline(sent(1), night)
    verdicts = [check(expectation(quiet={"start": "21:00", "end": "08:00"}), tl),
                check(expectation(message={"step": "reminder", "within": ["2d", "3d"]}), tl)]  # fmt: skip
    lines = diff(tl, verdicts)
    assert lines == [
        '  Mon 07 Dec 11:00  sent        news · send · email  "Hello"',
        '+ Mon 07 Dec 23:00  sent        news · send · email  "Hello"',
        "- Wed 09 Dec 10:00  expected    reminder, 2d to 3d after the start",
    ]


def test_every_shipped_campaign_has_a_campaign_test_and_one_checks_the_global_ceiling():
    tests = [load_model(path, CampaignTest) for path in campaign_test_files(ROOT / "campaigns" / "tests")]
    expected = {e.message.campaign for test in tests for e in test.expect if isinstance(e, ExpectMessage)}
    campaigns = {c.id for c in load_campaigns(ROOT / "campaigns")}
    assert campaigns - expected == set()
    ceiling = load_model(ROOT / "campaigns" / POLICY_FILE, HouseRulesSpec).global_ceiling
    assert any(
        e.at_most.messages == ceiling.max and e.at_most.per == ceiling.per
        for test in tests for e in test.expect if isinstance(e, ExpectAtMost)
    )  # fmt: skip


@pytest.mark.parametrize(
    "written, says",
    [
        ({"message": {"step": "send", "within": ["2d", "1d"]}}, "within [2d, 1d] ends before it begins"),
        ({"message": {"step": "send", "within": ["5w", "6w"]}}, "within starts at 5w, after the test's end (3w)"),
        ({"message": {"step": "send", "local": ["09:00", "09:00"]}}, "the hours 09:00–09:00 are empty"),
        ({"quiet": {"start": "00:00", "end": "00:00"}}, "the hours 00:00–00:00 are empty"),
        ({"nothing_after": {"event": "acount_closed"}}, "the test never sends acount_closed: add it to events"),
        ({"message": {"step": "send", "within": [0, 1]}}, "0 is not an offset; write it with its unit"),
    ],
)
def test_an_expectation_that_could_never_fail_is_refused(written, says):
    with pytest.raises(ValidationError, match=re.escape(says)):
        expectation(**written)


def test_an_event_after_the_end_of_a_test_is_refused():
    with pytest.raises(ValidationError, match="event signed_up at 2w is after the end of the simulation \\(1w\\)"):
        late, anything = {"event": "signed_up", "at": "2w"}, {"no_message": {}}
        CampaignTest.model_validate({"weeks": 1, "contact": {"id": "ada"}, "events": [late], "expect": [anything]})


def test_campaigns_and_steps_the_campaigns_do_not_have_are_named():
    sends = {"welcome_series": ["tips", "nudge_profile"], "welcome": ["welcome_email"]}
    test = CampaignTest.model_validate({"contact": {"id": "ada"}, "expect": [
        {"no_message": {"campaign": "welcom"}}, {"message": {"campaign": "welcome_series", "step": "tipz"}},
        {"message": {"step": "nudge"}}, {"at_most": {"messages": 1, "per": "1d", "campaign": "welcome_seris"}},
        {"message": {"campaign": "welcome_series", "step": "tips"}}]})  # fmt: skip
    assert unknown_names(test, sends) == [
        "expectation 1: no campaign 'welcom'; the campaigns are welcome_series, welcome",
        "expectation 2: welcome_series has no step 'tipz' that sends; it sends at tips, nudge_profile",
        "expectation 3: no campaign has a step 'nudge' that sends",
        "expectation 4: no campaign 'welcome_seris'; the campaigns are welcome_series, welcome",
    ]


def run_tests(home: Path, *paths):
    env = {"PATH": "/usr/bin:/bin", "CARECAST_HOME": str(home)}
    return subprocess.run([CARECAST, "test", *map(str, paths)], env=env, capture_output=True, text=True, timeout=120,
                          cwd=ROOT)  # fmt: skip


def test_carecast_test_passes_a_true_file_and_fails_a_false_one_with_the_timeline(tmp_path):
    contact = "contact: {id: ada, email: ada@example.com}\nevents: [{event: signed_up, at: 0d}]\n"
    (tmp_path / "true.yaml").write_text(
        f"description: confirmed at once\nweeks: 1\n{contact}"
        "expect:\n  - message: {campaign: welcome, step: welcome_email, within: [0d, 5m], count: 1}\n"
    )
    (tmp_path / "false.yaml").write_text(
        f"description: never welcomed\nweeks: 1\n{contact}expect:\n  - no_message: {{campaign: welcome}}\n"
        "  - message: {campaign: welcome, channel: sms}\n"
    )
    done = run_tests(tmp_path / "home", tmp_path / "true.yaml", tmp_path / "false.yaml")
    assert done.returncode == 1
    assert "pass  true.yaml  confirmed at once" in done.stdout
    assert "FAIL  false.yaml  never welcomed" in done.stdout
    assert "✗ expected no welcome; 1 came" in done.stdout and "✗ expected welcome · sms; 0 came" in done.stdout
    [unwanted] = [line for line in done.stdout.splitlines() if line.startswith("    + ")]
    assert unwanted.endswith('sent        welcome · welcome_email · email  "Welcome to Acme"')
    assert [line for line in done.stdout.splitlines() if line.startswith("    - ")][0].endswith(
        "expected    welcome · sms"
    )
    assert "1 of 2 campaign test(s) failed" in done.stderr


def test_carecast_test_refuses_a_campaign_it_does_not_have_rather_than_pass(tmp_path):
    (tmp_path / "typo.yaml").write_text(
        "contact: {id: ada, email: ada@example.com}\nevents: [{event: signed_up, at: 0d}]\n"
        "expect:\n  - no_message: {campaign: welcom}\n"
    )
    done = run_tests(tmp_path / "home", tmp_path / "typo.yaml")
    assert done.returncode == 1 and "pass" not in done.stdout
    assert f"{tmp_path / 'typo.yaml'}: expectation 1: no campaign 'welcom'; the campaigns are" in done.stderr


def test_a_mistake_in_a_test_file_is_reported_at_its_line(tmp_path):
    (tmp_path / "typo.yaml").write_text(
        "contact: {id: ada}\nexpect:\n  - message: {campaign: welcome}\n  - at_mots: {messages: 1, per: 1d}\n"
    )
    done = run_tests(tmp_path / "home", tmp_path / "typo.yaml")
    assert done.returncode == 1
    assert "typo.yaml:4" in done.stderr
    assert "an expectation has exactly one of message, no_message, quiet, at_most, nothing_after" in done.stderr
