"""Rendering: strict about undefined variables, autoescaped HTML, locale fallback."""

import pytest

from carecast.render.templates import TemplateError, TemplateRenderer, locale_candidates

CONTEXT = {"contact": {"attributes": {"first_name": "Ada <3"}, "care_agent": None}}


@pytest.fixture
def renderer(tmp_path):
    (tmp_path / "hello.email.subject.j2").write_text("Hello {{ contact.attributes.first_name }}\n")
    (tmp_path / "hello.email.txt.j2").write_text("Hi {{ contact.attributes.first_name }}")
    (tmp_path / "hello.email.html.j2").write_text("<p>Hi {{ contact.attributes.first_name }}</p>")
    (tmp_path / "hello.email.subject.fr.j2").write_text("Bonjour {{ contact.attributes.first_name }}")
    (tmp_path / "typo.sms.j2").write_text("Hi\n{{ contact.attributes.frist_name }}")
    return TemplateRenderer(tmp_path)


def test_email_renders_subject_text_and_escaped_html(renderer):
    email = renderer.render_email("hello", CONTEXT)
    assert email.subject == "Hello Ada <3"
    assert email.text == "Hi Ada <3"
    assert email.html == "<p>Hi Ada &lt;3</p>"


def test_locale_variant_is_used_and_falls_back_part_by_part(renderer):
    email = renderer.render_email("hello", CONTEXT, locale="fr-CA")
    assert email.subject == "Bonjour Ada <3"
    assert email.text == "Hi Ada <3"


def test_locale_candidates_go_from_specific_to_default():
    assert locale_candidates("fr-CA") == ["fr-CA", "fr", ""]
    assert locale_candidates(None) == [""]


def test_undefined_variable_names_the_file_and_line(renderer, tmp_path):
    with pytest.raises(TemplateError, match=rf"{tmp_path / 'typo.sms.j2'}:2: .*'frist_name'"):
        renderer.render_part("typo", "sms", CONTEXT)


def test_missing_template_says_which(renderer):
    with pytest.raises(TemplateError, match=r"template nope\.sms\.j2 not found"):
        renderer.render_part("nope", "sms", CONTEXT)


def test_sandbox_refuses_unsafe_attribute_access(tmp_path):
    (tmp_path / "evil.sms.j2").write_text("{{ contact.__class__.__mro__ }}")
    with pytest.raises(Exception, match="unsafe|not safely"):
        TemplateRenderer(tmp_path).render_part("evil", "sms", CONTEXT)
