"""The way back: signed SendGrid events and Twilio callbacks, posted by the fakes to a served API."""

import asyncio
import json
import time
from dataclasses import dataclass, replace

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import func, select

from carecast.api.app import create_app
from carecast.campaign.house_rules import HouseRulesSpec
from carecast.campaign.kpis import HouseGuardrails
from carecast.campaign.load import campaign_files
from carecast.fakes.server import FakeProviders
from carecast.intake.controls import control_campaign
from carecast.reporting.campaign import campaign_report
from carecast.store.models import (
    CampaignControl,
    CampaignVersion,
    ConsentRecord,
    Delivery,
    DeliveryEvent,
    Event,
    GuardrailBreach,
    HouseRulesVersion,
    Preferences,
    ProviderEvent,
    Suppression,
    utcnow,
)
from tests.factories import add_contact, deploy
from tests.serving import serve

pytestmark = pytest.mark.store

PHONE = "+14155550101"


@dataclass
class Wired:
    fakes: FakeProviders
    url: str

    async def flush(self) -> list[int]:
        return [d.status for d in await asyncio.to_thread(self.fakes.flush_callbacks)]


@pytest.fixture
async def alert_inbox():
    """An operator's webhook: the JSON each guardrail alert POSTs."""
    from fastapi import FastAPI, Request

    received: list[dict] = []
    app = FastAPI()

    @app.post("/hook")
    async def hook(request: Request) -> dict:
        received.append(await request.json())
        return {}

    async with serve(lambda url: app) as url:
        yield f"{url}/hook", received


@pytest.fixture
async def wired(settings, engine, sessions, time_skipping_env, alert_inbox):
    with sessions.begin() as session:
        deploy(session, settings.templates_dir, *campaign_files(settings.campaigns_dir))
        add_contact(session, "c-1", email="ada@example.com", phone=PHONE, sms_consent=True)

    async def temporal():
        return time_skipping_env.client

    holder = {}

    def make_app(url):
        fakes = FakeProviders(sendgrid_webhook_url=f"{url}/webhooks/sendgrid",
                              twilio_inbound_url=f"{url}/webhooks/twilio/inbound")  # fmt: skip
        holder["fakes"] = fakes
        configured = replace(
            settings,
            public_url=url,
            sendgrid_webhook_public_key=fakes.sendgrid.signer.public_key,
            twilio_account_sid=fakes.twilio.account_sid,
            twilio_auth_token=fakes.twilio.auth_token,
            alert_webhook_url=alert_inbox[0],
            guardrail_check_seconds=0,  # every callback sets off a check
        )
        return create_app(configured, engine=engine, temporal=temporal)

    async with serve(make_app) as url:
        with holder["fakes"] as fakes:
            yield Wired(fakes, url)


def add_delivery(sessions, channel="email", campaign_id="win_back") -> int:
    with sessions.begin() as session:
        row = Delivery(idempotency_key=f"k-{channel}-{campaign_id}", workflow_id="w", campaign_id=campaign_id,
                       campaign_version=1, category="marketing", step_id="s", contact_id="c-1", channel=channel,
                       status="sent", status_history=[])  # fmt: skip
        session.add(row)
        session.flush()
        return row.id


def event(delivery_id, kind, event_id, **fields):
    return {"email": "ada@example.com", "timestamp": int(time.time()), "event": kind, "sg_event_id": event_id,
            "sg_message_id": "m.filter0001", "delivery_id": str(delivery_id), **fields}  # fmt: skip


def delivery(sessions, delivery_id) -> Delivery:
    with sessions() as session:
        return session.get(Delivery, delivery_id)


def count(sessions, query) -> int:
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(query.subquery()))


async def test_signed_sendgrid_events_update_the_delivery_once(wired, sessions):
    delivery_id = add_delivery(sessions)
    wired.fakes.sendgrid.post_events([event(delivery_id, "delivered", "ev-1")])
    wired.fakes.sendgrid.post_events([event(delivery_id, "delivered", "ev-1"), event(delivery_id, "open", "ev-2")])
    assert await wired.flush() == [200, 200]
    row = delivery(sessions, delivery_id)
    assert row.status == "delivered"
    assert [h["event"] for h in row.status_history] == ["delivered", "open"]
    assert count(sessions, select(ProviderEvent)) == 2


@pytest.mark.parametrize(
    ("kind", "fields", "status", "suppression", "check"),
    [
        ("bounce", {"type": "bounce", "reason": "550 no such user"}, "bounced", "hard_bounce", None),
        ("bounce", {"type": "blocked", "reason": "421 try later"}, "bounced", None, None),
        ("dropped", {"reason": "Bounced Address"}, "dropped", None, None),
        ("spamreport", {}, "sent", "spam_complaint", ("email_consent", False)),
        ("unsubscribe", {}, "sent", None, ("marketing_consent", False)),
        ("group_unsubscribe", {"asm_group_id": 1}, "sent", None, ("topics", {"offers": False})),
    ],
    ids=["hard-bounce", "blocked", "dropped", "spamreport", "unsubscribe", "group-unsubscribe"],
)
async def test_bounces_complaints_and_unsubscribes_change_suppressions_and_preferences(
    wired, sessions, kind, fields, status, suppression, check
):
    delivery_id = add_delivery(sessions)
    wired.fakes.sendgrid.post_events([event(delivery_id, kind, f"ev-{kind}", **fields)])
    assert await wired.flush() == [200]
    assert delivery(sessions, delivery_id).status == status
    with sessions() as session:
        reasons = list(session.scalars(select(Suppression.reason).where(Suppression.address == "ada@example.com")))
        prefs = session.get(Preferences, "c-1")
        records = list(session.scalars(select(ConsentRecord.source)))
    assert reasons == ([suppression] if suppression else [])
    if check:
        assert getattr(prefs, check[0]) == check[1]
        assert records == ["sendgrid"]


@pytest.mark.parametrize("forgery", ["tampered-body", "no-signature", "five-minutes-old", "garbage-signature"])
async def test_a_forged_sendgrid_callback_is_403_and_changes_nothing(wired, sessions, forgery):
    delivery_id = add_delivery(sessions)
    stamp = int(time.time()) - 301 if forgery == "five-minutes-old" else None
    callback = wired.fakes.sendgrid.post_events([event(delivery_id, "bounce", "ev-x", type="bounce")], stamp)
    if forgery == "tampered-body":
        callback.content = json.dumps([event(delivery_id + 1, "bounce", "ev-x", type="bounce")]).encode()
    elif forgery == "no-signature":
        del callback.headers["X-Twilio-Email-Event-Webhook-Signature"]
    elif forgery == "garbage-signature":
        callback.headers["X-Twilio-Email-Event-Webhook-Signature"] = "not base64!"
    assert await wired.flush() == [403]
    assert delivery(sessions, delivery_id).status == "sent"
    assert count(sessions, select(Suppression)) == count(sessions, select(ProviderEvent)) == 0


@pytest.mark.parametrize(
    "body",
    [b'{"event": "delivered"}', b"not json", b'["delivered"]', b"[" * 100_000 + b"]" * 100_000],
    ids=["object", "not-json", "strings", "nested-too-deep"],
)
async def test_a_signed_batch_that_is_not_an_array_of_events_is_400_and_changes_nothing(wired, sessions, body):
    callback = wired.fakes.sendgrid.post_events([])
    callback.content = body
    callback.headers.update(wired.fakes.sendgrid.signer.headers(body))
    assert await wired.flush() == [400]
    assert count(sessions, select(ProviderEvent)) == 0


async def test_signed_twilio_status_callbacks_update_the_delivery(wired, sessions):
    delivery_id = add_delivery(sessions, channel="sms", campaign_id="welcome")
    callback_url = f"{wired.url}/webhooks/twilio/status?delivery={delivery_id}"
    for status in ("sent", "delivered", "delivered"):
        wired.fakes.journal.owe(wired.fakes.twilio.signed(callback_url, {"MessageSid": "SM1", "MessageStatus": status}))
    assert await wired.flush() == [204, 204, 204]
    row = delivery(sessions, delivery_id)
    assert row.status == "delivered" and [h["event"] for h in row.status_history] == ["sent", "delivered"]


async def test_a_failed_sms_for_a_stopped_number_suppresses_it(wired, sessions):
    delivery_id = add_delivery(sessions, channel="sms", campaign_id="welcome")
    url = f"{wired.url}/webhooks/twilio/status?delivery={delivery_id}"
    params = {"MessageSid": "SM2", "MessageStatus": "undelivered", "ErrorCode": "21610"}
    wired.fakes.journal.owe(wired.fakes.twilio.signed(url, params))
    assert await wired.flush() == [204]
    assert delivery(sessions, delivery_id).status == "undelivered"
    with sessions() as session:
        assert session.scalars(select(Suppression.reason).where(Suppression.address == PHONE)).all() == ["stop"]


@pytest.mark.parametrize("forgery", ["wrong-token", "other-url", "no-signature"])
async def test_a_forged_twilio_callback_is_403_and_changes_nothing(wired, sessions, forgery):
    delivery_id = add_delivery(sessions, channel="sms", campaign_id="welcome")
    url = f"{wired.url}/webhooks/twilio/status?delivery={delivery_id}"
    callback = wired.fakes.twilio.signed(url, {"MessageSid": "SM3", "MessageStatus": "delivered"})
    if forgery == "wrong-token":
        callback.headers["X-Twilio-Signature"] = (
            FakeProviders(twilio_auth_token="other").twilio.signed(url, callback.form).headers["X-Twilio-Signature"]
        )
    elif forgery == "other-url":  # a signature for another delivery, replayed here
        callback.url = f"{wired.url}/webhooks/twilio/status?delivery={delivery_id + 1}"
    else:
        del callback.headers["X-Twilio-Signature"]
    wired.fakes.journal.owe(callback)
    assert await wired.flush() == [403]
    assert delivery(sessions, delivery_id).status == "sent"


@pytest.mark.parametrize("body", ["STOP", "stop", " Stop. ", "STOPALL", "Unsubscribe", "cancel", "END", "quit",
                                  "revoke", "OptOut"])  # fmt: skip
async def test_stop_keywords_revoke_sms_consent_with_a_record(wired, sessions, body):
    wired.fakes.inbound_sms(PHONE, body)
    assert await wired.flush() == [200]
    with sessions() as session:
        assert session.get(Preferences, "c-1").sms_consent is False
        record = session.scalars(select(ConsentRecord)).one()
        replies = session.scalars(select(Event).where(Event.name == "sms_replied")).all()
    assert (record.channel, record.granted, record.source) == ("sms", False, "sms_keyword")
    assert record.wording == f"SMS reply: {body.strip()}"
    assert [r.data for r in replies] == [{"body": body, "keyword": "STOP"}]


async def test_start_restores_sms_consent_and_help_is_recorded(wired, sessions):
    for body in ("STOP", "start", "HELP", "Stop sending me pizza"):
        wired.fakes.inbound_sms(PHONE, body)
    assert await wired.flush() == [200] * 4
    with sessions() as session:
        assert session.get(Preferences, "c-1").sms_consent is True
        grants = session.scalars(select(ConsentRecord.granted).order_by(ConsentRecord.id)).all()
        kinds = session.scalars(select(ProviderEvent.kind).order_by(ProviderEvent.id)).all()
        keywords = [e.data["keyword"] for e in session.scalars(select(Event).order_by(Event.id))]
    assert grants == [False, True]
    assert kinds == ["inbound:STOP", "inbound:START", "inbound:HELP", "inbound:text"]
    assert keywords == ["STOP", "START", "HELP", None]


async def test_a_forged_inbound_stop_changes_nothing(wired, sessions):
    callback = wired.fakes.inbound_sms(PHONE, "START")
    callback.content = callback.content.replace(b"START", b"STOP")
    assert await wired.flush() == [403]
    with sessions() as session:
        assert session.get(Preferences, "c-1").sms_consent is True


@pytest.mark.parametrize(
    ("kind", "fields", "address", "suppression", "check"),
    [
        ("bounce", {"type": "bounce"}, "Someone@Elsewhere.example", "hard_bounce", None),
        ("bounce", {"type": "blocked"}, "ada@example.com", None, None),
        ("spamreport", {}, "ada@example.com", "spam_complaint", ("email_consent", False)),
        ("unsubscribe", {}, "ada@example.com", None, ("marketing_consent", False)),
    ],
    ids=["hard-bounce-of-no-contact", "blocked", "spamreport", "account-unsubscribe"],
)
async def test_an_event_that_names_only_an_address_still_suppresses_and_opts_out(
    wired, sessions, kind, fields, address, suppression, check
):
    """A message another system sent from the same account, or an account-level unsubscribe: no delivery id."""
    no_delivery = {k: v for k, v in event(0, kind, f"ev-addr-{kind}", **fields).items() if k != "delivery_id"}
    wired.fakes.sendgrid.post_events([{**no_delivery, "email": address}])
    assert await wired.flush() == [200]
    stored = address.split("@")[0] + "@" + address.split("@")[1].lower()
    with sessions() as session:
        reasons = list(session.scalars(select(Suppression.reason).where(Suppression.address == stored)))
        prefs = session.get(Preferences, "c-1")
    assert reasons == ([suppression] if suppression else [])
    if check:
        assert getattr(prefs, check[0]) == check[1]


async def test_a_clicked_link_is_stored_without_the_tokens_in_it(wired, sessions):
    delivery_id = add_delivery(sessions)
    clicked = "https://care.example.com/u/eyJjIjoiYy0xIn0.c2ln?utm_source=email&auth_token=s3cret#top"
    wired.fakes.sendgrid.post_events([event(delivery_id, "click", "ev-click", url=clicked)])
    assert await wired.flush() == [200]
    [click] = [h for h in delivery(sessions, delivery_id).status_history if h["event"] == "click"]
    assert click["url"] == "https://care.example.com/u/[token]?utm_source=email&auth_token=[token]"


async def test_a_plain_request_to_stop_withdraws_sms_consent_quoting_the_words(wired, sessions):
    wired.fakes.inbound_sms(PHONE, "Please stop texting me")
    assert await wired.flush() == [200]
    with sessions() as session:
        assert session.get(Preferences, "c-1").sms_consent is False
        record = session.scalars(select(ConsentRecord)).one()
    assert (record.granted, record.wording) == (False, "SMS reply: Please stop texting me")


async def test_a_reply_that_only_may_mean_stop_is_flagged_for_review_and_changes_nothing(wired, sessions, caplog):
    wired.fakes.inbound_sms(PHONE, "Can you stop by the shop tomorrow?")
    assert await wired.flush() == [200]
    with sessions() as session:
        assert session.get(Preferences, "c-1").sms_consent is True
        [reply] = session.scalars(select(Event).where(Event.name == "sms_replied")).all()
    assert reply.data == {"body": "Can you stop by the shop tomorrow?", "keyword": None, "review": True}
    assert "review it" in caplog.text


async def test_a_contact_stored_before_the_id_rule_can_still_opt_out(wired, sessions):
    with sessions.begin() as session:  # an id from before email-shaped ids were refused
        add_contact(session, "old@example.com", email="old@example.com", phone="+14155550199", sms_consent=True)
    wired.fakes.inbound_sms("+14155550199", "STOP")
    assert await wired.flush() == [200]
    with sessions() as session:
        assert session.get(Preferences, "old@example.com").sms_consent is False


def report_rows(sessions) -> list[tuple]:
    with sessions() as session:
        rows = session.scalars(select(DeliveryEvent).order_by(DeliveryEvent.id)).all()
        return [(r.delivery_id, r.campaign_id, r.step_id, r.channel, r.kind, r.reason, r.url) for r in rows]


async def test_provider_news_becomes_rows_a_report_counts_once_each(wired, sessions):
    email, sms = add_delivery(sessions), add_delivery(sessions, channel="sms", campaign_id="welcome")
    with sessions.begin() as session:
        session.get(Delivery, sms).sent_at = utcnow()  # the text a reply answers
    link = "https://acme.example/u/SEALED-TOKEN?utm_source=mail&token=abc"
    wired.fakes.sendgrid.post_events([
        event(email, "delivered", "ev-1"), event(email, "open", "ev-2", sg_machine_open=False),
        event(email, "open", "ev-3", sg_machine_open=True), event(email, "click", "ev-4", url=link),
        event(email, "spamreport", "ev-5"), event(email, "bounce", "ev-6", type="blocked", reason="421 try later"),
    ])  # fmt: skip
    wired.fakes.sendgrid.post_events([event(email, "open", "ev-2", sg_machine_open=False)])  # sent again: once
    status_url = f"{wired.url}/webhooks/twilio/status?delivery={sms}"
    for status in ("sent", "delivered"):
        wired.fakes.journal.owe(wired.fakes.twilio.signed(status_url, {"MessageSid": "SM9", "MessageStatus": status}))
    wired.fakes.inbound_sms(PHONE, "STOP")

    def counted(provider, result):
        return REGISTRY.get_sample_value("carecast_webhook_requests_total", {"provider": provider, "result": result})

    opens, statuses = counted("sendgrid", "open") or 0, counted("twilio", "delivered") or 0
    assert await wired.flush() == [200, 200, 204, 204, 200]
    assert (counted("sendgrid", "open"), counted("twilio", "delivered")) == (opens + 2, statuses + 1)  # for /metrics
    where_email, where_sms = (email, "win_back", "s", "email"), (sms, "welcome", "s", "sms")
    assert report_rows(sessions) == [
        (*where_email, "delivered", None, None), (*where_email, "opened", None, None),
        (*where_email, "machine_opened", None, None),
        (*where_email, "clicked", None, "https://acme.example/u/[token]?utm_source=mail&token=[token]"),
        (*where_email, "complained", None, None), (*where_email, "bounced", "blocked", None),
        (*where_sms, "delivered", None, None), (*where_sms, "replied", None, None),
        (*where_sms, "unsubscribed", None, None),
    ]  # fmt: skip


def sent_messages(sessions, campaign_id, count) -> list[int]:
    with sessions.begin() as session:
        version = session.scalar(select(CampaignVersion.version).where(CampaignVersion.campaign_id == campaign_id))
        rows = [Delivery(idempotency_key=f"{campaign_id}-{n}", workflow_id="w", campaign_id=campaign_id,
                         campaign_version=version, category="x", step_id="s", contact_id="c-1", channel="email",
                         status="sent", status_history=[], sent_at=utcnow()) for n in range(count)]  # fmt: skip
        session.add_all(rows)
        session.flush()
        return [row.id for row in rows]


async def test_complaints_over_the_guardrail_pause_a_marketing_campaign_and_only_alert_a_transactional_one(
    wired, sessions, alert_inbox, caplog
):
    with sessions.begin() as session:  # a house that judges guardrails after 20 messages
        rules = {"guardrails": {"min_sample": 20, "complaint_rate": {"at_most": "0.1%"}}}
        session.add(HouseRulesVersion(content_hash="h", document=HouseRulesSpec.model_validate(rules).model_dump(
            mode="json", by_alias=True)))  # fmt: skip
    offers, receipts = sent_messages(sessions, "win_back", 20), sent_messages(sessions, "order_confirmation", 20)
    news = [event(i, "delivered", f"d-{i}") for i in offers + receipts]
    news += [event(i, "spamreport", f"s-{i}") for i in offers[:3] + receipts[:3]]  # 15 %: far over 0.1 %
    wired.fakes.sendgrid.post_events(news)
    assert await wired.flush() == [200]
    with sessions() as session:
        controls = {c.campaign_id: (c.state, c.reason) for c in session.scalars(select(CampaignControl))}
        breaches = {
            (b.campaign_id, b.kpi, b.action, b.hits, b.trials) for b in session.scalars(select(GuardrailBreach))
        }
    assert breaches == {("win_back", "complaint_rate", "paused", 3, 20),
                        ("order_confirmation", "complaint_rate", "alerted", 3, 20)}  # fmt: skip
    assert list(controls) == ["win_back"]  # order confirmations must go out
    assert controls["win_back"][0] == "paused"
    assert controls["win_back"][1] == "guardrail: complaint_rate 15.00% over its ceiling 0.10% (3 of 20) in version 1"
    assert sorted((a["campaign_id"], a["action"]) for a in alert_inbox[1]) == [
        ("order_confirmation", "alerted"), ("win_back", "paused")]  # fmt: skip
    assert any("win_back: guardrail: complaint_rate" in r.message and r.levelname == "ERROR" for r in caplog.records)

    with sessions() as session:  # the report says so
        shown = campaign_report(session, "win_back", HouseGuardrails())
    assert (shown.state, [(b.kpi, b.action) for b in shown.breaches]) == ("paused", [("complaint_rate", "paused")])

    # Resumed by an operator, it stays resumed: that breach was acted on; more news is judged, not acted on again.
    with sessions.begin() as session:
        control_campaign(session, "win_back", "resume")
    wired.fakes.sendgrid.post_events([event(offers[5], "spamreport", "s-again")])
    assert await wired.flush() == [200]
    with sessions() as session:
        assert session.get(CampaignControl, "win_back").state == "running"
