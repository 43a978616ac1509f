"""Campaign files: the shipped ones load; broken ones say where and what is wrong."""

from pathlib import Path

import pytest

from carecast.spec.documents import SpecError
from carecast.spec.loader import load_campaign, load_campaigns

ROOT = Path(__file__).resolve().parent.parent

WELCOME = """\
id: welcome
name: Welcome
category: transactional
trigger: {event: signed_up}
steps:
  - id: hello
    send: {template: welcome, channels: [email]}
"""


def write(tmp_path, text, name="welcome.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_shipped_campaigns_load():
    assert [c.id for c in load_campaigns(ROOT / "campaigns")] == ["welcome"]


def test_yaml_syntax_error_names_line_and_column(tmp_path):
    path = write(tmp_path, WELCOME.replace("trigger: {event: signed_up}", "trigger: {event: signed_up"))
    with pytest.raises(SpecError, match=rf"^{path}:\d+:\d+: "):
        load_campaign(path)


def test_unknown_key_is_an_error_naming_the_field(tmp_path):
    path = write(tmp_path, WELCOME + "scheduel: weekly\n")
    with pytest.raises(SpecError, match=rf"^{path}: scheduel: Extra inputs are not permitted"):
        load_campaign(path)


def test_unknown_channel_lists_the_allowed_ones(tmp_path):
    path = write(tmp_path, WELCOME.replace("channels: [email]", "channels: [fax]"))
    with pytest.raises(SpecError, match=r"steps\.0\.send\.channels: .*'fax'; use one of email, sms, voice"):
        load_campaign(path)


def test_id_must_match_the_file_name(tmp_path):
    path = write(tmp_path, WELCOME, name="hello.yaml")
    with pytest.raises(SpecError, match="id 'welcome' must match the file name 'hello'"):
        load_campaign(path)


def test_content_hash_ignores_layout_and_follows_meaning(tmp_path):
    original = load_campaign(write(tmp_path, WELCOME))
    reformatted = load_campaign(
        write(tmp_path, "# a comment\n" + WELCOME.replace("{event: signed_up}", "\n  event: signed_up"))
    )
    changed = load_campaign(write(tmp_path, WELCOME.replace("name: Welcome", "name: Hello")))
    assert original.content_hash() == reformatted.content_hash() != changed.content_hash()
