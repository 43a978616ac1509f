"""`carecast validate`: every mistake a marketer can make, with the exact message it gets."""

import json
from pathlib import Path

import pytest

from carecast.campaign.documents import InvalidFile
from carecast.campaign.load import load_campaign
from carecast.campaign.model import Campaign
from carecast.campaign.validate import validate_project
from tests.factories import add_contact

ROOT = Path(__file__).resolve().parent.parent

JOURNEY = """\
id: hello
name: Hello
category: marketing
topic: tips
trigger: {event: signed_up}
samples: {contact: {attributes: {first_name: Ada}}}
steps:
  - id: first
    send: {template: hello, channels: [email]}
  - id: pause
    wait: 1d
  - id: second
    send: {template: hello, channels: [email]}
"""

HELLO_TEMPLATES = {
    "hello.email.subject.j2": "Hello {{ contact.attributes.first_name }}",
    "hello.email.txt.j2": "Hi!\nUnsubscribe: {{ unsubscribe_url }}\n{{ postal_address }}",
}
POLICY = "email: {from: Acme <care@acme.example>, postal_address: '1 Main St, Springfield'}\n"


@pytest.fixture
def project(tmp_path):
    campaigns, templates = tmp_path / "campaigns", tmp_path / "templates"
    campaigns.mkdir()
    templates.mkdir()
    for name, text in HELLO_TEMPLATES.items():
        (templates / name).write_text(text)
    (campaigns / "policy.yaml").write_text(POLICY)

    def write(text, name="hello.yaml", **template_files):
        (campaigns / name).write_text(text)
        for filename, body in template_files.items():
            (templates / filename.replace("__", ".")).write_text(body)
        return campaigns / name

    write.campaigns, write.templates = campaigns, templates
    return write


def messages(project, *paths):
    report = validate_project(project.campaigns, project.templates, paths or None)
    return [str(p) for p in report.errors], [str(p) for p in report.warnings]


def only_error(project, path):
    errors, _ = messages(project, path)
    assert len(errors) == 1, errors
    return errors[0].removeprefix(f"{path}:").lstrip()


def test_the_shipped_campaigns_templates_and_rules_are_valid():
    report = validate_project(ROOT / "campaigns", ROOT / "templates")
    assert [str(p) for p in report.errors + report.warnings] == []
    assert {c.id for c in report.campaigns} == {
        "welcome", "welcome_series", "order_confirmation", "delivery_delay", "back_in_stock", "win_back",
        "preference_link",
    }  # fmt: skip


def test_a_valid_journey_passes(project):
    assert messages(project, project(JOURNEY)) == ([], [])


def test_yaml_syntax_error_points_at_the_line(project):
    path = project(JOURNEY.replace("trigger: {event: signed_up}", "trigger: {event: signed_up"))
    assert only_error(project, path) == "6:8: expected ',' or '}', but got ':'"


def test_unknown_key_lists_the_allowed_ones(project):
    path = project(JOURNEY.replace("    wait: 1d", "    wait: 1d\n    wiat: 2d"))
    assert only_error(project, path) == ("12:5: unknown key 'wiat'; allowed here: id, wait, max_visits, when_spent")


def test_unknown_step_target(project):
    path = project(JOURNEY.replace("    wait: 1d", "    wait_for: {event: clicked, timeout: 2d, on_timeout: sceond}"))
    assert only_error(project, path) == "11:57: no step 'sceond' in this journey; steps are first, pause, second"


def test_unreachable_step(project):
    path = project(JOURNEY.replace("    wait: 1d", "    exit: true"))
    assert only_error(project, path) == "12:9: step 'second' can never be reached"


def test_cycle_without_a_wait(project):
    looping = (
        JOURNEY
        + """\
  - id: again
    branch:
      cases: [{when: {attributes.vip: {eq: true}}, goto: second}]
"""
    )
    assert only_error(project, project(looping)) == "12:9: steps second -> again -> second loop without a wait step"


def test_a_loop_through_a_wait_is_fine(project):
    looping = (
        JOURNEY
        + """\
  - id: again
    branch:
      cases: [{when: {attributes.vip: {eq: true}}, goto: pause}]
"""
    )
    assert messages(project, project(looping)) == ([], [])


def test_cron_that_croniter_rejects(project):
    path = project(
        "id: hello\nname: Hello\ncategory: marketing\ntopic: tips\naudience: {lifecycle_stage: {eq: new}}\n"
        "schedule: {cron: '0 25 * * *', timezone: Europe/Paris}\nsend: {template: hello, channels: [email]}\n"
    )
    assert only_error(project, path) == (
        "6:18: '0 25 * * *' is not a five-field cron expression, e.g. '0 10 * * 1' (Mondays 10:00)"
    )


def test_unknown_channel(project):
    path = project(JOURNEY.replace("channels: [email]}\n  - id: pause", "channels: [fax]}\n  - id: pause"))
    assert only_error(project, path) == "9:39: unknown channel 'fax'; use one of email, sms, voice"


def test_id_must_match_the_file_name(project):
    path = project(JOURNEY, name="other.yaml")
    assert only_error(project, path) == "1:5: id 'hello' must match the file name 'other'"


def test_marketing_needs_a_topic(project):
    path = project(JOURNEY.replace("topic: tips\n", ""))
    assert only_error(project, path) == "1:1: a marketing campaign needs a topic, so contacts can unsubscribe from it"


def test_a_step_does_one_thing(project):
    path = project(JOURNEY.replace("    wait: 1d", "    wait: 1d\n    exit: true"))
    assert only_error(project, path) == (
        "10:5: step 'pause' needs exactly one of send, wait, wait_until, wait_for, branch, update, goto, exit (found 2)"
    )


def test_bad_filter_in_a_branch_names_the_problem(project):
    branching = (
        JOURNEY
        + """\
  - id: choose
    branch:
      cases: [{when: {attributes.vip: {is: true}}, goto: second}]
"""
    )
    assert only_error(project, project(branching)) == (
        "16:22: attributes.vip: unknown operator 'is'; use one of eq, ne, gt, gte, lt, lte, in, not_in, "
        "older_than, within, exists"
    )


def test_unknown_lifecycle_stage(project):
    (project.campaigns / "lifecycle.yaml").write_text(
        "stages:\n  - {name: new, when: {lifecycle_stage: {eq: x}}}\n  - {name: lead}\n"
    )
    path = project(JOURNEY.replace("trigger: {event: signed_up}", "trigger: {stage: lapsed}"))
    assert only_error(project, path) == "5:18: unknown lifecycle stage 'lapsed'; stages are new, lead"


def test_undefined_template_variable_names_the_template_file_and_line_and_the_campaign(project):
    path = project(
        JOURNEY,
        hello__email__txt__j2="Hi\n{{ contact.attributes.frist_name }}\n{{ unsubscribe_url }} {{ postal_address }}",
    )
    errors, _ = messages(project, path)
    assert (
        errors
        == [
            f"{project.templates / 'hello.email.txt.j2'}:2: 'dict object' has no attribute 'frist_name' (rendering "
            "campaign hello's samples: if the name is right, give it a value under `samples:` in hello.yaml)"
        ]
        * 2
    )


def test_marketing_email_without_an_unsubscribe_link(project):
    path = project(JOURNEY, hello__email__txt__j2="Hi, no way out here. {{ postal_address }}")
    errors, _ = messages(project, path)
    assert set(errors) == {
        f"{project.templates / 'hello.email.txt.j2'}: a marketing email must contain its unsubscribe link: "
        "add {{ unsubscribe_url }}"
    }


def test_marketing_email_without_the_postal_address(project):
    path = project(JOURNEY, hello__email__txt__j2="Hi! {{ unsubscribe_url }}")
    errors, _ = messages(project, path)
    assert set(errors) == {
        f"{project.templates / 'hello.email.txt.j2'}: a marketing email must show the postal address (CAN-SPAM): "
        "add {{ postal_address }}"
    }


def test_marketing_email_when_the_house_rules_name_no_postal_address(project):
    (project.campaigns / "policy.yaml").write_text("timezone: UTC\n")
    errors, _ = messages(project, project(JOURNEY))
    assert set(errors) == {
        f"{project.templates / 'hello.email.txt.j2'}: a marketing email must show the postal address (CAN-SPAM): "
        "add {{ postal_address }} and set email.postal_address in policy.yaml"
    }


def test_a_sender_that_is_not_an_email_address(project):
    path = project(JOURNEY + "sender: {from: Acme care team}\n")
    assert only_error(project, path) == (
        "14:16: 'Acme care team' is not an email address; write 'Acme Care <care@acme.example>'"
    )


def test_missing_template_part(project):
    path = project(JOURNEY.replace("channels: [email]}\n  - id: pause", "channels: [email, sms]}\n  - id: pause"))
    assert only_error(project, path) == f"9:22: sms needs hello.sms.j2 in {project.templates}"


def test_an_sms_over_three_segments_is_a_warning_with_the_count(project):
    path = project(
        JOURNEY.replace("channels: [email]}\n  - id: pause", "channels: [sms]}\n  - id: pause"),
        hello__sms__j2="x" * 470,
    )
    errors, warnings = messages(project, path)
    assert errors == []
    assert warnings == [
        f"{project.templates / 'hello.sms.j2'}: this SMS takes 4 segments (470 GSM-7 characters); keep it to 3 or fewer"
    ]


def test_the_json_schema_in_the_repository_is_current():
    committed = json.loads((ROOT / "campaign.schema.json").read_text())
    generated = Campaign.model_json_schema()
    generated["title"] = "carecast campaign"
    assert committed == generated, "run `carecast schema > campaign.schema.json`"


def test_content_hash_ignores_layout_and_follows_meaning(project):
    original = load_campaign(project(JOURNEY))
    reformatted = load_campaign(
        project("# a comment\n" + JOURNEY.replace("{event: signed_up}", "\n  event: signed_up"))
    )
    changed = load_campaign(project(JOURNEY.replace("name: Hello", "name: Hi")))
    assert original.content_hash() == reformatted.content_hash() != changed.content_hash()


def test_load_errors_collect_every_problem_in_the_file(project):
    path = project(JOURNEY.replace("topic: tips", "topic: Tips").replace("wait: 1d", "wait: soon"))
    with pytest.raises(InvalidFile) as error:
        load_campaign(path)
    assert len(error.value.problems) == 2


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "stages:\n  - {name: new}\n  - {name: lead}\n",
            "1:1: stage 'new' has no rule, so the stages after it could never match",
        ),
        (
            "stages:\n  - {name: lead, when: {lifecycle: {eq: x}}}\n",
            "2:24: unknown field 'lifecycle'; use one of id, email",
        ),
    ],
)
def test_lifecycle_mistakes(project, text, message):
    (project.campaigns / "lifecycle.yaml").write_text(text)
    errors, _ = messages(project, project(JOURNEY))
    assert errors[0].startswith(f"{project.campaigns / 'lifecycle.yaml'}:{message}")


def test_the_command_exits_1_and_prints_each_problem(project):
    import os
    import subprocess
    import sys

    path = project(JOURNEY.replace("wait: 1d", "wait: soon"))
    env = {
        **os.environ,
        "CARECAST_CAMPAIGNS_DIR": str(project.campaigns),
        "CARECAST_TEMPLATES_DIR": str(project.templates),
    }
    carecast = str(Path(sys.executable).with_name("carecast"))
    done = subprocess.run([carecast, "validate"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert f"{path}:11:11: 'soon' is not a duration" in done.stderr
    assert "Traceback" not in done.stderr
    (project.campaigns / "hello.yaml").write_text(JOURNEY)
    assert subprocess.run([carecast, "validate"], env=env, capture_output=True, timeout=60).returncode == 0


LOOPING = """\
id: hello
name: Hello
category: care
trigger: {event: signed_up}
samples: {contact: {attributes: {first_name: Ada}}}
steps:
  - id: first
    send: {template: hello, channels: [email]}
"""


@pytest.mark.parametrize(
    ("steps", "message"),
    [
        ("  - {id: pause, wait: 1d, max_visits: 2, when_spent: again}\n  - {id: again, goto: pause}\n",
         "steps pause -> again -> pause loop without a wait step"),
        ("  - {id: pause, wait: 1d, when_spent: first}\n",
         "step 'pause' has when_spent but no max_visits: when_spent says where to go once max_visits is spent"),
        ("  - {id: pause, wait: 1d, max_visits: 0}\n",
         "max_visits is how many times the journey may enter the step: 1 or more, not 0"),
        ("  - {id: again, goto: frist}\n", "no step 'frist' in this journey; steps are first, again"),
        ("  - {id: pause, wait: 1d, max_visits: 2, when_spent: nowhere}\n",
         "no step 'nowhere' in this journey; steps are first, pause"),
        ("  - {id: again, goto: first}\n", "steps first -> again -> first loop without a wait step"),
    ],
    ids=["spent-jump-without-a-wait", "when-spent-without-max-visits", "max-visits-zero", "goto-nowhere",
         "when-spent-nowhere", "goto-loop-without-a-wait"],
)  # fmt: skip
def test_loops_and_their_bounds_are_checked(project, steps, message):
    error = only_error(project, project(LOOPING + steps))
    assert error.split(": ", 1)[1] == message


def test_a_bounded_loop_through_a_wait_is_fine(project):
    steps = "  - {id: pause, wait: 1d, max_visits: 3}\n  - {id: again, goto: first}\n"
    assert messages(project, project(LOOPING + steps)) == ([], [])


LIFECYCLE = "stages:\n  - {name: new, when: {lifecycle_stage: {eq: x}}}\n  - {name: lead}\n"


def test_a_folder_is_validated_as_the_campaigns_in_it(project):
    path = project(JOURNEY)
    (project.campaigns / "lifecycle.yaml").write_text(LIFECYCLE)
    assert messages(project, project.campaigns) == ([], [])
    path.write_text(JOURNEY.replace("wait: 1d", "wait: 1 day"))
    errors, _ = messages(project, project.campaigns)
    assert errors == [
        f"{path}:11:11: '1 day' is not a duration; write a number and a unit, e.g. 15m, 2h, 3d, 1w or 1h30m"
    ]


def test_every_file_of_the_folder_named_at_once_gives_no_false_errors(project):
    """`carecast validate campaigns/*.yaml`: the house files are checked as what they are."""
    project(JOURNEY)
    (project.campaigns / "lifecycle.yaml").write_text(LIFECYCLE)
    assert messages(project, *sorted(project.campaigns.glob("*.yaml"))) == ([], [])
    (project.campaigns / "policy.yaml").write_text("quiet_hours: {start: '25:00', end: '08:00'}\n")
    errors, _ = messages(project, project.campaigns / "policy.yaml")
    assert len(errors) == 1 and errors[0].startswith(f"{project.campaigns / 'policy.yaml'}:1:")


def test_a_path_that_is_not_there_is_named(project, tmp_path):
    assert messages(project, tmp_path / "nowhere.yaml") == (
        [f"{tmp_path / 'nowhere.yaml'}: no such file or folder"],
        [],
    )


@pytest.mark.store
def test_a_filter_comparing_with_an_attribute_stored_as_text_is_a_warning_at_its_line(project, sessions):
    path = project(
        "id: vip_news\nname: VIP news\ncategory: marketing\ntopic: tips\n"
        "audience:\n  any:\n    - attributes.vip: {eq: true}\n    - attributes.visits: {gte: 3}\n"
        "send: {template: hello, channels: [email]}\n",
        name="vip_news.yaml",
    )
    with sessions.begin() as session:
        add_contact(session, "c-1", attributes={"vip": "true", "visits": 4})  # vip imported without a type
        add_contact(session, "c-2", attributes={"vip": True})
    with sessions() as session:
        report = validate_project(project.campaigns, project.templates, [path], session)
    assert [str(w) for w in report.warnings] == [
        f"{path}:7:28: attributes.vip is compared with a boolean, but 1 stored contact(s) hold it as text, which "
        "never matches: import the column as attr.vip:bool"
    ]


@pytest.mark.store
def test_presence_checks_and_lifecycle_stages_are_judged_rightly_against_stored_text(project, sessions):
    """`exists` holds for text too (no warning); a lifecycle stage's comparison is checked like a campaign's."""
    present = "trigger: {event: signed_up}\nentry: {when: {attributes.interests: {exists: true}}}"
    project(JOURNEY.replace("trigger: {event: signed_up}", present))
    (project.campaigns / "lifecycle.yaml").write_text(
        "stages:\n  - {name: loyal, when: {attributes.orders: {gte: 5}}}\n  - {name: new}\n"
    )
    with sessions.begin() as session:
        add_contact(session, "c-1", attributes={"interests": "running", "orders": "7"})
    with sessions() as session:
        report = validate_project(project.campaigns, project.templates, [project.campaigns], session)
    assert [str(w) for w in report.warnings] == [
        f"{project.campaigns.resolve() / 'lifecycle.yaml'}:2:51: attributes.orders is compared with a number, but 1 "
        "stored contact(s) hold it as text, which never matches: import the column as attr.orders:number"
    ]


def test_a_campaign_file_elsewhere_is_checked_against_the_campaigns_folders_house_files(project, tmp_path):
    """A draft outside the folder: the postal address still comes from campaigns/policy.yaml, as deploy takes it."""
    drafts = tmp_path / "drafts"
    drafts.mkdir()
    draft = drafts / "hello.yaml"
    draft.write_text(JOURNEY)
    assert messages(project, draft, draft.resolve()) == ([], [])  # named twice, checked once
    report = validate_project(project.campaigns, project.templates, [draft, draft.resolve()])
    assert len(report.campaigns) == 1
