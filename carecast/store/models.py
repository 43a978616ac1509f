"""SQLAlchemy models of everything carecast remembers.

The first Alembic migration creates exactly these tables; a change here needs a
new migration (`tests/test_migrations.py` checks that they agree).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    true,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from carecast.store.types import JsonDocument, UtcDateTime

# Stable constraint names, so migrations can refer to them on every database.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# An autoincrementing 64-bit key that SQLite also accepts as its rowid alias.
BigId = BigInteger().with_variant(Integer(), "sqlite")


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Contact(Base):
    """A person we may reach out to, keyed by the id the business knows them by."""

    __tablename__ = "contacts"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    email: Mapped[str | None] = mapped_column(String(320))
    phone: Mapped[str | None] = mapped_column(String(16), doc="E.164, e.g. +14155550100")
    timezone: Mapped[str | None] = mapped_column(String(64), doc="IANA zone, e.g. Europe/Paris")
    locale: Mapped[str | None] = mapped_column(String(35), doc="BCP 47 tag, e.g. fr-FR")
    lifecycle_stage: Mapped[str | None] = mapped_column(String(64), index=True)
    care_agent: Mapped[str | None] = mapped_column(String(128))
    attributes: Mapped[dict[str, Any]] = mapped_column(JsonDocument, default=dict)
    links_version: Mapped[int] = mapped_column(
        Integer, default=0, server_default="0", doc="preference links of an older version may no longer grant"
    )
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)


class Preferences(Base):
    """What a contact asked for. Contacts may tighten the house rules, never loosen them."""

    __tablename__ = "preferences"

    contact_id: Mapped[str] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"), primary_key=True)
    email_consent: Mapped[bool] = mapped_column(Boolean, default=True)
    sms_consent: Mapped[bool] = mapped_column(Boolean, default=False)
    voice_consent: Mapped[bool] = mapped_column(Boolean, default=False)
    preferred_channels: Mapped[list[str]] = mapped_column(JsonDocument, default=list)
    topics: Mapped[dict[str, bool]] = mapped_column(
        JsonDocument, default=dict, doc="topic -> subscribed; a missing topic is subscribed"
    )
    marketing_consent: Mapped[bool] = mapped_column(
        Boolean, default=True, server_default=true(), doc="False: no marketing at all, whatever the topic"
    )
    quiet_hours_start: Mapped[str | None] = mapped_column(String(5), doc="HH:MM local time")
    quiet_hours_end: Mapped[str | None] = mapped_column(String(5), doc="HH:MM local time")
    send_windows: Mapped[list[str]] = mapped_column(
        JsonDocument, default=list, doc="cron expressions in the contact's zone"
    )
    frequency_limit: Mapped[dict[str, Any] | None] = mapped_column(JsonDocument, doc='e.g. {"max": 3, "per": "7d"}')
    paused_until: Mapped[datetime | None] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)


class ConsentRecord(Base):
    """Append-only proof of what a contact agreed to or withdrew, when, and how."""

    __tablename__ = "consent_records"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    contact_id: Mapped[str] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"), index=True)
    channel: Mapped[str | None] = mapped_column(String(16))
    topic: Mapped[str | None] = mapped_column(String(64))
    granted: Mapped[bool] = mapped_column(Boolean)
    source: Mapped[str] = mapped_column(String(64), doc="import, api, sms_keyword, preference_center, ...")
    wording: Mapped[str | None] = mapped_column(Text, doc="the text the contact was shown")
    recorded_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class Suppression(Base):
    """An address no campaign may use: hard bounce, spam complaint, STOP, manual."""

    __tablename__ = "suppressions"
    __table_args__ = (UniqueConstraint("channel", "address", name="uq_suppressions_channel_address"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    channel: Mapped[str] = mapped_column(String(16))
    address: Mapped[str] = mapped_column(String(320))
    reason: Mapped[str] = mapped_column(String(32))
    source: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class KeptOptOut(Base):
    """An opt-out that outlived its contact (GDPR erasure), kept under a keyed hash of the address.

    See carecast/contacts/kept.py: a contact created later with that address starts opted out.
    """

    __tablename__ = "kept_opt_outs"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    address_hash: Mapped[str] = mapped_column(String(80), index=True, doc="hmac-sha256:<hex> of the address")
    channel: Mapped[str | None] = mapped_column(String(16), doc="consent withdrawn on this channel")
    topic: Mapped[str | None] = mapped_column(String(64), doc="or this topic left ('*': all marketing)")
    source: Mapped[str] = mapped_column(String(64), doc="where the opt-out came from, or suppression:<reason>")
    wording: Mapped[str | None] = mapped_column(Text, doc="the words of the opt-out, as its consent record had them")
    recorded_at: Mapped[datetime] = mapped_column(UtcDateTime, doc="when the contact opted out")
    kept_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, doc="when the contact was forgotten")


class Event(Base):
    """Something that happened to a contact; stored once per event id."""

    __tablename__ = "events"
    __table_args__ = (Index("ix_events_contact_name", "contact_id", "name"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(128), unique=True)
    contact_id: Mapped[str] = mapped_column(String(128))
    name: Mapped[str] = mapped_column(String(128))
    occurred_at: Mapped[datetime] = mapped_column(UtcDateTime)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    data: Mapped[dict[str, Any]] = mapped_column(JsonDocument, default=dict)


class CampaignVersion(Base):
    """One deployed bundle of a campaign; running journeys keep the version they began with.

    A bundle is the campaign, every template file it sends (all locales, the partials they
    include) and who its emails come from, hashed together (`content_hash`): editing a
    template deploys a new version, and journeys and broadcasts render from their own.
    Versions stored before bundles have no templates and render from the worker's folder.
    """

    __tablename__ = "campaign_versions"
    __table_args__ = (
        UniqueConstraint("campaign_id", "version", name="uq_campaign_versions_campaign_version"),
        UniqueConstraint("campaign_id", "content_hash", name="uq_campaign_versions_campaign_hash"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    campaign_id: Mapped[str] = mapped_column(String(64), index=True)
    version: Mapped[int] = mapped_column(Integer)
    content_hash: Mapped[str] = mapped_column(String(64))
    spec: Mapped[dict[str, Any]] = mapped_column(JsonDocument)
    templates: Mapped[dict[str, str] | None] = mapped_column(JsonDocument, doc="file name -> template source")
    identity: Mapped[dict[str, Any] | None] = mapped_column(
        JsonDocument, doc="sender, reply_to, postal_address, unsubscribe_mailto of its emails"
    )
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    deployed_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class HouseRulesVersion(Base):
    """`campaigns/policy.yaml` as deployed; workers apply the newest, so a tightened limit reaches every journey."""

    __tablename__ = "house_rules"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    content_hash: Mapped[str] = mapped_column(String(64))
    document: Mapped[dict[str, Any]] = mapped_column(JsonDocument, doc="the validated policy.yaml")
    deployed_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class CampaignControl(Base):
    """An operator's hold on a campaign: `paused` holds its sends, `stopped` takes no entries and ends journeys.

    No row means running.
    """

    __tablename__ = "campaign_controls"

    campaign_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    state: Mapped[str] = mapped_column(String(16), doc="running, paused or stopped")
    reason: Mapped[str | None] = mapped_column(Text)
    changed_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class Enrolment(Base):
    """A contact's entry into a journey, and what its events are routed by.

    `listens_to` and `key_field` are recorded from the version the journey enrolled
    with, so a later version never changes what a running journey hears.
    """

    __tablename__ = "enrolments"
    __table_args__ = (
        UniqueConstraint("campaign_id", "contact_id", "entry_key", name="uq_enrolments_campaign_contact_entry"),
        Index("ix_enrolments_contact_ended", "contact_id", "ended_at"),  # an event's running journeys
        Index("ix_enrolments_campaign_version", "campaign_id", "campaign_version"),  # reports
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    campaign_id: Mapped[str] = mapped_column(String(64))
    campaign_version: Mapped[int] = mapped_column(Integer)
    contact_id: Mapped[str] = mapped_column(String(128))
    entry_key: Mapped[str] = mapped_column(String(200), doc="the key's value, hashed when not short and safe")
    key_field: Mapped[str | None] = mapped_column(String(128), doc="the event data field the entry key came from")
    listens_to: Mapped[list[str]] = mapped_column(JsonDocument, default=list, doc="event names the journey hears")
    workflow_id: Mapped[str] = mapped_column(String(300))
    trigger_event_id: Mapped[str | None] = mapped_column(String(128))
    holdout: Mapped[bool] = mapped_column(Boolean, default=False)
    enrolled_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    goal_by: Mapped[datetime | None] = mapped_column(
        UtcDateTime, doc="the end of its goal window: a goal event until then converts this entry (reports)"
    )
    started_at: Mapped[datetime | None] = mapped_column(UtcDateTime, doc="when Temporal first confirmed the journey")
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime, doc="when carecast learned the journey is over")
    ended_by: Mapped[str | None] = mapped_column(
        String(160), doc="how it ended: completed, goal, exit:<event>, stopped, ... (None: learnt from Temporal)"
    )


class JourneySignal(Base):
    """The outbox between the store and Temporal: what a journey must be told, written with its cause.

    An event that starts or steers a journey and an operator's stop, pause or resume
    leave the store through these rows, in the transaction that decided them; the
    relay starts or signals the journey and deletes the row, retrying until Temporal
    answers. A journey not started yet is started with its first row (signal-with-start).
    """

    __tablename__ = "journey_signals"
    __table_args__ = (
        UniqueConstraint("workflow_id", "signal_key", name="uq_journey_signals_workflow_signal"),
        Index("ix_journey_signals_due", "next_attempt_at"),
        # An id is never given again (SQLite reuses rowids once the table empties, as this one often does),
        # so a late settlement cannot take a newer row for the one it delivered.
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    enrolment_id: Mapped[int] = mapped_column(ForeignKey("enrolments.id", ondelete="CASCADE"), index=True)
    workflow_id: Mapped[str] = mapped_column(String(300))
    kind: Mapped[str] = mapped_column(String(16), doc="event, stop, pause or resume")
    signal_key: Mapped[str] = mapped_column(String(200), doc="the event id, or the control's own id")
    event_name: Mapped[str | None] = mapped_column(String(128))
    stage: Mapped[str | None] = mapped_column(String(64))
    occurred_at: Mapped[datetime | None] = mapped_column(UtcDateTime, doc="when the event happened (its goal window)")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)


class ProviderEvent(Base):
    """A provider callback already applied (SendGrid `sg_event_id`, Twilio sid + status), so a resent one is not.

    Holds no address: the delivery row it changed says who it was for.
    """

    __tablename__ = "provider_events"
    __table_args__ = (UniqueConstraint("provider", "event_id", name="uq_provider_events_provider_event"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    provider: Mapped[str] = mapped_column(String(32))
    event_id: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(32))
    delivery_id: Mapped[int | None] = mapped_column(BigId)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class RateBucket(Base):
    """A token bucket per channel, shared by every worker, that paces hand-overs to a provider."""

    __tablename__ = "rate_buckets"

    channel: Mapped[str] = mapped_column(String(16), primary_key=True)
    tokens: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class Delivery(Base):
    """One message we meant to send, reserved before the provider is called.

    The idempotency key is unique, so a retried activity or a replayed workflow
    finds the row it wrote before instead of sending again.
    """

    __tablename__ = "deliveries"
    __table_args__ = (
        Index("ix_deliveries_contact_sent", "contact_id", "sent_at"),  # caps count a contact's recent sends
        Index("ix_deliveries_campaign_status", "campaign_id", "status"),
        Index("ix_deliveries_workflow_retry", "workflow_id", "retry_at"),  # a broadcast run's messages due a retry
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    idempotency_key: Mapped[str] = mapped_column(String(400), unique=True)
    workflow_id: Mapped[str] = mapped_column(String(300))
    campaign_id: Mapped[str] = mapped_column(String(64))
    campaign_version: Mapped[int] = mapped_column(Integer)
    category: Mapped[str] = mapped_column(String(16))
    step_id: Mapped[str] = mapped_column(String(64))
    contact_id: Mapped[str] = mapped_column(String(128))
    channel: Mapped[str | None] = mapped_column(String(16))
    template: Mapped[str | None] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16), doc="reserved, sent, skipped, failed, delivered, ...")
    reason: Mapped[str | None] = mapped_column(String(64))
    provider: Mapped[str | None] = mapped_column(String(32))
    provider_message_id: Mapped[str | None] = mapped_column(String(128))
    segments: Mapped[int | None] = mapped_column(Integer)
    status_history: Mapped[list[dict[str, Any]]] = mapped_column(JsonDocument, default=list)
    sent_at: Mapped[datetime | None] = mapped_column(
        UtcDateTime, doc="when the policy let it go out; frequency caps count from here"
    )
    retry_at: Mapped[datetime | None] = mapped_column(
        UtcDateTime, doc="while it waits to be tried again (deferred, refused for now, a resend due): not before this"
    )
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)


class DeliveryEvent(Base):
    """What happened to a message after its step decided it: a row to count in reports.

    Provider news (delivered, bounced, dropped, undelivered, not answered), what the
    recipient did (opened — `machine_opened` when SendGrid says a mail server's privacy
    proxy fetched it —, clicked, unsubscribed, complained, replied) and each deferral with
    its reason. The campaign, version, step and channel are copied from the delivery, so a
    report groups these rows without a join, and counts the `first` ones (a message opened
    three times is one opened message) without a DISTINCT. A clicked URL is kept without its tokens.
    """

    __tablename__ = "delivery_events"
    __table_args__ = (Index("ix_delivery_events_campaign_kind", "campaign_id", "campaign_version", "kind"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    delivery_id: Mapped[int] = mapped_column(BigId, index=True)
    campaign_id: Mapped[str] = mapped_column(String(64))
    campaign_version: Mapped[int] = mapped_column(Integer)
    step_id: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str | None] = mapped_column(String(16))
    kind: Mapped[str] = mapped_column(String(24))
    reason: Mapped[str | None] = mapped_column(String(64), doc="why it was deferred; a bounce's type")
    url: Mapped[str | None] = mapped_column(Text, doc="the link clicked, without its tokens")
    first: Mapped[bool] = mapped_column(
        Boolean, default=True, doc="the first of its kind (and reason) for its message: what reports count"
    )
    occurred_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class GuardrailBreach(Base):
    """A campaign version's guardrail rate found over its ceiling, and what was done: paused, or (a
    transactional campaign, which must go on) alerted. Acted on once a version and rate: a campaign an
    operator resumes is not paused again for the same breach; a new version is judged afresh."""

    __tablename__ = "guardrail_breaches"
    __table_args__ = (
        UniqueConstraint("campaign_id", "campaign_version", "kpi", name="uq_guardrail_breaches_campaign_version_kpi"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    campaign_id: Mapped[str] = mapped_column(String(64))
    campaign_version: Mapped[int] = mapped_column(Integer)
    kpi: Mapped[str] = mapped_column(String(32), doc="unsubscribe_rate, complaint_rate or bounce_rate")
    value: Mapped[float] = mapped_column(Float)
    ceiling: Mapped[float] = mapped_column(Float)
    hits: Mapped[int] = mapped_column(Integer, doc="unsubscribes, complaints or bounces")
    trials: Mapped[int] = mapped_column(Integer, doc="messages delivered (bounces: sent)")
    action: Mapped[str] = mapped_column(String(16), doc="paused or alerted")
    found_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
