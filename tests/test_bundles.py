"""A deployed version's bundle: what makes a new version, what `deploy` says, and what a version renders from."""

from pathlib import Path

import pytest
from sqlalchemy import select

from carecast.campaign.bundle import build_bundle
from carecast.campaign.load import load_campaign
from carecast.deploy import deploy_versions
from carecast.policy.model import EmailIdentity
from carecast.render.bundles import BundleTemplates
from carecast.render.templates import TemplateRenderer
from carecast.store.models import CampaignVersion

HOUSE = EmailIdentity(
    sender="Acme <care@acme.example>", reply_to=None, postal_address="1 Main St", unsubscribe_mailto=None
)
CAMPAIGN = """\
id: note
name: Note
category: care
trigger: {event: signed_up}
steps:
  - id: note
    send: {template: note, channels: [email]}
"""


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "note.yaml").write_text(CAMPAIGN)
    (tmp_path / "note.email.subject.j2").write_text("A note")
    (tmp_path / "note.email.txt.j2").write_text('Hello.\n{% include "_footer.txt.j2" %}')
    (tmp_path / "note.email.txt.fr.j2").write_text("Bonjour.")
    (tmp_path / "_footer.txt.j2").write_text('{% include "_address.txt.j2" %}')
    (tmp_path / "_address.txt.j2").write_text("Acme, 1 Main St")
    (tmp_path / "other.email.txt.j2").write_text("Not this campaign's.")
    return tmp_path


def content_hash(folder: Path, house: EmailIdentity = HOUSE) -> str:
    campaign = load_campaign(folder / "note.yaml")
    return build_bundle(campaign, folder, house).content_hash(campaign)


def test_the_bundle_holds_every_part_locale_and_partial_of_the_campaigns_templates(folder):
    campaign = load_campaign(folder / "note.yaml")
    files = build_bundle(campaign, folder, HOUSE).templates
    assert sorted(files) == [
        "_address.txt.j2", "_footer.txt.j2", "note.email.subject.j2", "note.email.txt.fr.j2", "note.email.txt.j2"
    ]  # fmt: skip


@pytest.mark.parametrize(
    "edit",
    [
        pytest.param(lambda f: (f / "note.email.txt.fr.j2").write_text("Salut."), id="a locale"),
        pytest.param(lambda f: (f / "_address.txt.j2").write_text("Acme, 2 Main St"), id="a nested partial"),
        pytest.param(lambda f: (f / "note.email.html.j2").write_text("<p>Hello.</p>"), id="a new part"),
        pytest.param(
            lambda f: (f / "note.yaml").write_text(
                CAMPAIGN.replace("category: care", "category: care\nsender: {from: Ops <ops@acme.example>}")
            ),
            id="the campaign's sender",
        ),
    ],
)
def test_what_a_version_sends_changing_changes_its_hash(folder, edit):
    before = content_hash(folder)
    edit(folder)
    assert content_hash(folder) != before


def test_the_houses_postal_address_is_part_of_every_version(folder):
    moved = EmailIdentity(sender=HOUSE.sender, postal_address="2 Main St")
    assert content_hash(folder, moved) != content_hash(folder)


def test_what_the_version_does_not_send_leaves_its_hash(folder):
    before = content_hash(folder)
    (folder / "other.email.txt.j2").write_text("Still not this campaign's.")
    relaid = CAMPAIGN.replace("trigger: {event: signed_up}", "trigger:\n  event: signed_up  # what starts it")
    (folder / "note.yaml").write_text("# a comment and another layout\n" + relaid)
    assert content_hash(folder) == before


@pytest.mark.store
def test_deploy_names_the_template_files_that_made_a_new_version(folder, sessions):
    def deploy() -> list[str]:
        with sessions.begin() as session:
            changes, _, _ = deploy_versions(session, [load_campaign(folder / "note.yaml")], folder, HOUSE)
        return [str(change) for change in changes]

    assert deploy() == [f"{'note':<22} deployed version 1"]
    assert deploy() == []
    (folder / "_address.txt.j2").write_text("Acme, 2 Main St")
    (folder / "note.email.txt.fr.j2").unlink()
    assert deploy() == [f"{'note':<22} deployed version 2 (templates changed: _address.txt.j2, note.email.txt.fr.j2)"]
    with sessions() as session:
        stored = dict(session.execute(select(CampaignVersion.version, CampaignVersion.templates)).all())
    assert stored[1]["_address.txt.j2"] == "Acme, 1 Main St"  # the first version keeps its own files
    assert "note.email.txt.fr.j2" not in stored[2]


@pytest.mark.store
def test_a_version_renders_from_its_bundle_after_the_folder_is_emptied(folder, sessions, tmp_path):
    with sessions.begin() as session:
        deploy_versions(session, [load_campaign(folder / "note.yaml")], folder, HOUSE)
    with sessions() as session:
        bundle = session.scalar(select(CampaignVersion.content_hash))
    for template in folder.glob("*.j2"):
        template.unlink()
    empty = TemplateRenderer(folder)
    renderer, identity = BundleTemplates(sessions, empty, house=lambda: EmailIdentity()).of("note", bundle)
    assert renderer.render_email("note", {}, locale="fr").text == "Bonjour."
    assert renderer.render_email("note", {}).text == "Hello.\nAcme, 1 Main St"
    assert identity == HOUSE  # who it came from, as deployed
