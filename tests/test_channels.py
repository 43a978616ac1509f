"""The SendGrid and Twilio channels, through the real SDKs, against the fakes (which check the official specs)."""

import json
import socket
from types import SimpleNamespace

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from carecast.channels.base import OutboundMessage, ProviderError
from carecast.channels.sendgrid_email import SendGridEmail
from carecast.channels.twilio_channels import TwilioSms, TwilioVoice, say_language, twilio_client
from carecast.fakes.openapi import SENDGRID_SPEC, _as_json_schema, validate
from carecast.fakes.sendgrid import _accepted, _recipient_accepted
from carecast.fakes.server import FakeProviders

PUBLIC = "https://care.example.com"
EMAIL = OutboundMessage(
    delivery_id=42, channel="email", to="ada@example.com", contact_id="c-1", campaign_id="win_back",
    subject="We miss you", text="Come back", html="<p>Come back</p>", sender="Acme Care <care@acme.example>",
    reply_to="Acme Help <help@acme.example>", category="marketing",
    headers={"List-Unsubscribe": "<https://care.example.com/u/t>, <mailto:unsubscribe@acme.example?subject=t>",
             "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"},
)  # fmt: skip
SMS = OutboundMessage(delivery_id=43, channel="sms", to="+14155550101", contact_id="c-1", campaign_id="welcome",
                      text="Welcome to Acme! Reply STOP to opt out.")  # fmt: skip


def sendgrid(fakes, key="SG.fake-key", timeout=5.0):
    return SendGridEmail(key, fakes.url, timeout)


def twilio(fakes, token="fake-auth-token", timeout=5.0):
    return twilio_client("AC" + "0" * 32, token, fakes.url, timeout)


def sms_channel(fakes, **kwargs):
    return TwilioSms(twilio(fakes, **kwargs), PUBLIC, messaging_service_sid=None, from_number="+15005550006")


def test_an_email_is_a_valid_mail_send_request_carrying_what_feedback_needs(fakes):
    receipt = sendgrid(fakes).send(EMAIL)
    [request] = fakes.received_by("sendgrid")
    body = request.body
    assert request.errors == [] and request.status == 202
    assert receipt.provider == "sendgrid" and receipt.message_id  # the 202's X-Message-Id
    assert body["from"] == {"email": "care@acme.example", "name": "Acme Care"}
    assert body["reply_to"] == {"email": "help@acme.example", "name": "Acme Help"}
    assert body["personalizations"] == [{"to": [{"email": "ada@example.com"}]}]
    assert body["custom_args"] == {"delivery_id": "42", "campaign_id": "win_back"}
    assert sorted(body["categories"]) == ["marketing", "win_back"]
    assert body["headers"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert body["headers"]["List-Unsubscribe"].startswith("<https://care.example.com/u/t>, <mailto:")
    assert [c["type"] for c in body["content"]] == ["text/plain", "text/html"]


def test_an_sms_names_its_sender_and_a_status_callback_for_its_delivery(fakes):
    receipt = sms_channel(fakes).send(SMS)
    [request] = fakes.received_by("twilio", "/Messages.json")
    assert request.errors == []
    assert request.body["StatusCallback"] == "https://care.example.com/webhooks/twilio/status?delivery=43"
    assert request.body["From"] == "+15005550006" and request.body["To"] == "+14155550101"
    assert receipt.message_id.startswith("SM") and receipt.segments == 1


def test_an_sms_can_go_through_a_messaging_service(fakes):
    channel = TwilioSms(twilio(fakes), PUBLIC, messaging_service_sid="MG" + "1" * 32, from_number=None)
    channel.send(SMS)
    [request] = fakes.received_by("twilio")
    assert request.body["MessagingServiceSid"] == "MG" + "1" * 32 and "From" not in request.body


def test_a_call_reads_the_script_in_the_contacts_language(fakes):
    call = OutboundMessage(delivery_id=44, channel="voice", to="+33612345678", contact_id="c-fr",
                           campaign_id="delivery_delay", text="Votre colis a du retard.", locale="fr")  # fmt: skip
    receipt = TwilioVoice(twilio(fakes), PUBLIC, from_number="+15005550006").send(call)
    [request] = fakes.received_by("twilio", "/Calls.json")
    assert request.errors == [] and receipt.message_id.startswith("CA")
    assert '<Say language="fr-FR">Votre colis a du retard.</Say>' in request.body["Twiml"]
    assert request.body["StatusCallback"].endswith("?delivery=44")


@pytest.mark.parametrize(
    ("locale", "language"), [(None, "en-US"), ("fr", "fr-FR"), ("en_GB", "en-GB"), ("pt-BR", "pt-BR"), ("xx", "en-US")]
)
def test_say_language(locale, language):
    assert say_language(locale) == language


@pytest.mark.parametrize(
    ("number", "kind", "code"),
    [("+15005550001", "invalid_address", 21211), ("+15005550004", "unsubscribed", 21610),
     ("+15005550009", "invalid_address", 21614), ("+15005550003", "rejected", 21408)],
)  # fmt: skip
def test_twilio_test_numbers_map_to_what_the_deliver_activity_does(fakes, number, kind, code):
    with pytest.raises(ProviderError) as error:
        sms_channel(fakes).send(OutboundMessage(**{**SMS.__dict__, "to": number}))
    assert error.value.kind == kind and f"error {code}" in str(error.value)
    assert not error.value.retryable


@pytest.mark.parametrize("provider", ["sendgrid", "twilio"])
def test_429_is_retried_after_what_retry_after_says(fakes, provider):
    fakes.fail_next(provider, 429, retry_after=7)
    with pytest.raises(ProviderError) as error:
        sendgrid(fakes).send(EMAIL) if provider == "sendgrid" else sms_channel(fakes).send(SMS)
    assert (error.value.kind, error.value.retry_after, error.value.retryable) == ("temporary", 7.0, True)


@pytest.mark.parametrize("provider", ["sendgrid", "twilio"])
def test_5xx_is_retried(fakes, provider):
    fakes.fail_next(provider, 503)
    with pytest.raises(ProviderError) as error:
        sendgrid(fakes).send(EMAIL) if provider == "sendgrid" else sms_channel(fakes).send(SMS)
    assert error.value.retryable and error.value.retry_after is None


@pytest.mark.parametrize("provider", ["sendgrid", "twilio"])
def test_a_provider_that_takes_the_message_but_answers_too_late_leaves_it_uncertain(fakes, provider):
    fakes.fail_next(provider, 202 if provider == "sendgrid" else 201, delay=2.0)
    with pytest.raises(ProviderError) as error:
        if provider == "sendgrid":
            sendgrid(fakes, timeout=0.5).send(EMAIL)
        else:
            sms_channel(fakes, timeout=0.5).send(SMS)
    assert (error.value.kind, error.value.retryable) == ("uncertain", False)  # the worker did not hang, and
    assert "did not answer after the request was sent" in str(error.value)  # it may be out: no blind retry


@pytest.mark.parametrize("provider", ["sendgrid", "twilio"])
def test_a_provider_that_cannot_be_reached_is_retried(provider):
    with socket.socket() as placeholder:  # a port nothing listens on
        placeholder.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{placeholder.getsockname()[1]}"
    unreachable = SimpleNamespace(url=url)
    with pytest.raises(ProviderError) as error:
        sendgrid(unreachable).send(EMAIL) if provider == "sendgrid" else sms_channel(unreachable).send(SMS)
    assert (error.value.kind, error.value.retryable) == ("temporary", True)
    assert "could not be reached" in str(error.value)


def test_refused_credentials_name_the_setting_the_operator_must_fix(fakes):
    with pytest.raises(ProviderError) as email_error:
        sendgrid(fakes, key="SG.wrong").send(EMAIL)
    with pytest.raises(ProviderError) as sms_error:
        sms_channel(fakes, token="wrong").send(SMS)
    assert email_error.value.kind == sms_error.value.kind == "auth"
    assert "SENDGRID_API_KEY" in str(email_error.value) and "TWILIO_AUTH_TOKEN" in str(sms_error.value)


def test_the_fakes_refuse_requests_the_official_specs_do_not_allow():
    with FakeProviders() as fakes:
        bad_mail = {"personalizations": [{"to": [{"email": "not-an-address"}]}], "subject": 3}
        mail = httpx.post(f"{fakes.url}/v3/mail/send", json=bad_mail, headers={"Authorization": "Bearer SG.fake-key"})
        sms = httpx.post(
            f"{fakes.url}/2010-04-01/Accounts/{'AC' + '0' * 32}/Messages.json",
            data={"To": "+14155550101", "Body": "hi", "SmartEncoded": "maybe"},
            auth=("AC" + "0" * 32, "fake-auth-token"),
        )
        assert (mail.status_code, sms.status_code) == (400, 400)
        errors = [e for r in fakes.invalid for e in r.errors]
    assert 'personalizations/0/to/0/email: "not-an-address" is not a "email"' in errors
    assert '(body): "from" is a required property' in errors
    assert any("boolean" in e for e in errors)
    assert "personalizations.0.to.0.email" in [e["field"] for e in json.loads(mail.content)["errors"]]


def test_the_sendgrid_spec_defect_on_custom_args_is_patched():
    body = {
        "personalizations": [{"to": [{"email": "a@example.com"}]}],
        "from": {"email": "b@example.com"},
        "subject": "s",
        "content": [{"type": "text/plain", "value": "x"}],
        "custom_args": {"delivery_id": "1"},
    }
    headers = {"content-type": "application/json", "authorization": "Bearer k"}
    assert validate(SENDGRID_SPEC, "POST", "/v3/mail/send", headers, json.dumps(body).encode()) == []
    body["custom_args"] = {"delivery_id": 1}  # values must be strings
    assert validate(SENDGRID_SPEC, "POST", "/v3/mail/send", headers, json.dumps(body).encode()) != []


def page_of(n, **overrides):
    return [OutboundMessage(**{**EMAIL.__dict__, "delivery_id": 100 + i, "to": f"c{i}@example.com",
                               "subject": f"Hi {i}", "text": f"Hello {i}", "html": f"<p>Hello {i}</p>", **overrides})
            for i in range(n)]  # fmt: skip


def test_a_page_of_emails_goes_as_one_valid_request_with_a_personalization_each(fakes):
    receipts = sendgrid(fakes).send_many(page_of(50))
    [request] = fakes.received_by("sendgrid")
    assert request.errors == [] and request.status == 202
    personalizations = request.body["personalizations"]
    assert len(personalizations) == 50 and len({r.message_id for r in receipts}) == 1
    first = personalizations[0]
    assert first["to"] == [{"email": "c0@example.com"}] and first["subject"] == "Hi 0"
    assert first["custom_args"] == {"delivery_id": "100"}
    assert first["headers"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert set(first["substitutions"].values()) == {"Hello 0", "<p>Hello 0</p>"}
    assert {c["value"] for c in request.body["content"]} == set(first["substitutions"])


def test_a_message_over_the_substitution_limit_goes_on_its_own(fakes):
    big = OutboundMessage(**{**EMAIL.__dict__, "delivery_id": 99, "html": "<p>" + "x" * 12_000 + "</p>"})
    sendgrid(fakes).send_many([*page_of(3), big])
    sizes = sorted(len(r.body["personalizations"]) for r in fakes.received_by("sendgrid"))
    assert sizes == [1, 3]


def test_a_batch_refused_as_a_whole_is_sent_one_by_one_so_the_others_go(fakes):
    messages = page_of(3)
    messages[1] = OutboundMessage(**{**messages[1].__dict__, "to": "ada@@example.com"})  # SendGrid refuses it
    answers = sendgrid(fakes).send_many(messages)
    assert [type(a).__name__ for a in answers] == ["ProviderReceipt", "ProviderError", "ProviderReceipt"]
    assert answers[1].kind == "invalid_address"
    fakes.journal.received.clear()  # the refused batch was refused on purpose


@pytest.mark.parametrize(("status", "kind"), [(429, "temporary"), (503, "temporary"), (401, "auth")])
def test_a_batch_the_provider_cannot_take_now_fails_every_message_the_same_way(fakes, status, kind):
    fakes.fail_next("sendgrid", status, retry_after=3)
    key = "SG.wrong" if status == 401 else "SG.fake-key"
    answers = sendgrid(fakes, key=key).send_many(page_of(4))
    assert [a.kind for a in answers] == [kind] * 4
    assert len(fakes.received_by("sendgrid")) == 1


def test_openapi_nullable_becomes_a_null_type_for_the_compiled_validator():
    schema = {"type": "object", "properties": {"field": {"type": "string", "nullable": True, "enum": ["a"]}}}
    assert _as_json_schema(schema)["properties"]["field"] == {"type": ["string", "null"], "enum": ["a", None]}


ADDRESS_PARTS = st.text(alphabet="ab.-_%+@é 1", min_size=0, max_size=12)


@given(local=ADDRESS_PARTS, domain=st.one_of(ADDRESS_PARTS, st.sampled_from(["example.com", "sub.example.co.uk"])))
@settings(max_examples=300, deadline=None)
def test_the_fake_sendgrid_quick_address_check_agrees_with_email_validator(local, domain):
    address = f"{local}@{domain}"
    assert _recipient_accepted(address) == _accepted(address)
