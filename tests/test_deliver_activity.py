"""The deliver activity: the policy under the contact's lock, one message per idempotency key."""

import ssl
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, time, timedelta
from email import message_from_bytes
from pathlib import Path

import pytest
from sqlalchemy import select
from temporalio.exceptions import ApplicationError

from activities.deliver import DeliveryActivities
from carecast.channels.base import ProviderError, ProviderReceipt
from carecast.channels.outbox import OutboxProvider
from carecast.channels.router import ChannelRouter, Unconfigured
from carecast.contacts.suppressions import add_suppression
from carecast.delivery.answers import RESEND_UNCERTAIN_AFTER
from carecast.intake.controls import control_campaign
from carecast.policy.model import CapRule, EmailIdentity, HouseRules, QuietHours
from carecast.render.links import LinkSigner
from carecast.render.templates import TemplateRenderer
from carecast.store.models import Delivery, DeliveryEvent, Preferences, Suppression, utcnow
from tests.factories import add_contact, deliver_attempt
from workflows.journey.contract import DELIVER_TIMEOUT, DeliverInput

pytestmark = pytest.mark.store

ROOT = Path(__file__).resolve().parent.parent
TWO_A_DAY = HouseRules(default_timezone="UTC", caps=(CapRule("marketing_daily", 2, timedelta(days=1)),))


def request(n=0, contact_id="c-1", channels=("email", "sms"), category="transactional", **fields):
    return DeliverInput(
        workflow_id=f"journey/welcome/{contact_id}/e-{n}", campaign_id="welcome", campaign_name="Welcome",
        campaign_version=1,
        category=category, step_id="welcome_email", template="welcome", channels=list(channels),
        contact_id=contact_id, trigger_event_id=None, topic="news" if category == "marketing" else None, **fields,
    )  # fmt: skip


class FailingProvider:
    name = "failing"
    idempotent = False

    def __init__(self, retryable: bool) -> None:
        self.retryable = retryable

    def send(self, message):
        raise ProviderError("503 from provider", kind="temporary" if self.retryable else "rejected")


class Clock:
    """A clock the test moves on, as Temporal's retry delays would."""

    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self):
        return self.now

    def wait(self, delay: timedelta) -> None:
        self.now += delay


@pytest.fixture
def printed():
    return []


NO_RULES = HouseRules()


def activities(engine, sessions, tmp_path, printed, rules=NO_RULES, provider=None, clock=utcnow):
    provider = provider or OutboxProvider(tmp_path / "outbox", echo=printed.append)
    links = LinkSigner("test secret", "https://care.example.com")
    return DeliveryActivities(sessions, TemplateRenderer(ROOT / "templates"), provider, rules, links, clock)


@pytest.fixture
def deliver(engine, sessions, tmp_path, printed):
    return activities(engine, sessions, tmp_path, printed).deliver


def run(deliver, req):
    return deliver_attempt().run(deliver, req)


def deliveries(sessions):
    with sessions() as session:
        return session.scalars(select(Delivery).order_by(Delivery.id)).all()


def test_sends_by_email_and_records_the_provider_id(sessions, deliver, printed):
    with sessions.begin() as session:
        add_contact(session)
    result = run(deliver, request())
    [row] = deliveries(sessions)
    assert (result.status, result.channel) == ("sent", "email")
    assert (row.status, row.provider, row.provider_message_id) == ("sent", "outbox", f"outbox-{row.id}")
    assert [entry["status"] for entry in row.status_history] == ["reserved", "sending", "sent"]
    assert row.sent_at is not None
    assert printed and printed[0].endswith("email  c-1  Welcome to Acme, Ada")


class CallbackFirstProvider:
    """A provider whose delivery callback reaches carecast before its answer to the send does."""

    name = "quick"
    idempotent = False

    def __init__(self, sessions) -> None:
        self.sessions = sessions

    def send(self, message):
        with self.sessions.begin() as session:
            row = session.get(Delivery, message.delivery_id)
            row.status = "delivered"
            row.status_history = [*row.status_history, {"status": "delivered"}]
        return ProviderReceipt(self.name, "m-1")


def test_a_callback_that_beats_the_record_keeps_its_status(engine, sessions, tmp_path, printed):
    provider = CallbackFirstProvider(sessions)
    deliver = activities(engine, sessions, tmp_path, printed, provider=provider).deliver
    with sessions.begin() as session:
        add_contact(session)
    result = run(deliver, request())
    [row] = deliveries(sessions)
    assert result.status == "sent"  # what this step did: handed it over
    assert (row.status, row.provider, row.provider_message_id) == ("delivered", "quick", "m-1")
    assert [entry["status"] for entry in row.status_history] == ["reserved", "sending", "delivered", "sent"]
    assert row.sent_at is not None


def test_a_retry_with_the_same_key_returns_the_recorded_result_without_sending(sessions, deliver, printed):
    with sessions.begin() as session:
        add_contact(session)
    first = run(deliver, request())
    second = run(deliver, request())
    assert first == second
    assert len(deliveries(sessions)) == 1
    assert len(printed) == 1


def test_falls_back_to_sms_when_the_email_is_suppressed(sessions, deliver):
    with sessions.begin() as session:
        add_contact(session, sms_consent=True)
        session.add(Suppression(channel="email", address="ada@example.com", reason="hard_bounce"))
    result = run(deliver, request())
    assert (result.status, result.channel) == ("sent", "sms")


def test_skips_with_the_policy_reason_and_sends_nothing(sessions, deliver, printed):
    with sessions.begin() as session:
        add_contact(session, email=None)
    result = run(deliver, request())
    assert (result.status, result.reason) == ("skipped", "no_address")
    assert (deliveries(sessions)[0].status, deliveries(sessions)[0].reason) == ("skipped", "no_address")
    assert printed == []


def test_unknown_contact_is_skipped(sessions, deliver):
    result = run(deliver, request(contact_id="ghost"))
    assert (result.status, result.reason) == ("skipped", "unknown_contact")


def test_quiet_hours_defer_with_the_local_time_for_the_timer_summary(engine, sessions, tmp_path, printed):
    midnight_in_paris = datetime(2026, 6, 10, 22, 0, tzinfo=UTC)
    quiet_nights = HouseRules(default_timezone="UTC", quiet_hours=QuietHours(time(21, 0), time(8, 0)))
    deliver = activities(
        engine, sessions, tmp_path, printed, rules=quiet_nights, clock=lambda: midnight_in_paris
    ).deliver
    with sessions.begin() as session:
        add_contact(session, timezone="Europe/Paris")
    result = run(deliver, request(category="marketing", held_since=midnight_in_paris, max_hold_seconds=86400))
    assert (result.status, result.reason) == ("deferred", "quiet_hours")
    assert result.deferred_until == datetime(2026, 6, 11, 6, 0, tzinfo=UTC)
    assert result.deferred_until_local == "08:00 Europe/Paris"
    assert deliveries(sessions)[0].status == "deferred"
    assert printed == []
    with sessions() as session:  # a row for reports: deferrals by reason
        [deferral] = session.scalars(select(DeliveryEvent)).all()
    assert (deferral.kind, deferral.reason, deferral.step_id) == ("deferred", "quiet_hours", request().step_id)


def test_broken_template_fails_without_retry_and_records_why(sessions, deliver):
    with sessions.begin() as session:
        add_contact(session, attributes={})  # the welcome_interests template needs interests
    with pytest.raises(ApplicationError, match="interests") as failure:
        run(deliver, replace(request(), template="welcome_interests"))
    assert failure.value.non_retryable
    [row] = deliveries(sessions)
    assert (row.status, row.reason) == ("failed", "template_error")


def test_a_provider_failure_releases_the_claim_so_it_does_not_count(engine, sessions, tmp_path, printed):
    deliver = activities(engine, sessions, tmp_path, printed, provider=FailingProvider(retryable=True)).deliver
    with sessions.begin() as session:
        add_contact(session)
    with pytest.raises(ApplicationError, match="503 from provider") as failure:
        run(deliver, request())
    assert not failure.value.non_retryable
    [row] = deliveries(sessions)
    assert (row.status, row.sent_at) == ("reserved", None)


def crashed_mid_send(category):
    """The row a worker leaves when it dies after handing a message over and before recording it."""
    return Delivery(
        idempotency_key=request(category=category).idempotency_key, workflow_id="w", campaign_id="welcome",
        campaign_version=1, category=category, step_id="welcome_email", contact_id="c-1", channel="email",
        status="sending", sent_at=utcnow() - 2 * DELIVER_TIMEOUT, status_history=[],
    )  # fmt: skip


class CountingProvider:
    """A provider that, like SendGrid or Twilio, would deliver a second hand-over twice."""

    name = "counting"
    idempotent = False

    def __init__(self) -> None:
        self.sent = []

    def send(self, message):
        self.sent.append(message.delivery_id)
        return ProviderReceipt(self.name, f"m-{message.delivery_id}")


@pytest.mark.parametrize(("category", "status"), [("marketing", "uncertain"), ("care", "sent")])
def test_a_crash_between_sending_and_recording_is_resolved_by_category(
    engine, sessions, tmp_path, printed, category, status
):
    provider = CountingProvider()
    deliver = activities(engine, sessions, tmp_path, printed, provider=provider).deliver
    with sessions.begin() as session:
        add_contact(session)
        session.add(crashed_mid_send(category))
    result = run(deliver, request(category=category))
    assert result.status == status
    assert len(provider.sent) == (1 if status == "sent" else 0)


def test_an_idempotent_provider_is_simply_retried_after_a_crash(sessions, deliver, printed):
    with sessions.begin() as session:
        add_contact(session)
        session.add(crashed_mid_send("marketing"))
    assert run(deliver, request(category="marketing")).status == "sent"  # the outbox rewrites the same file
    assert len(printed) == 1


def test_fifty_racing_sends_to_one_contact_with_a_cap_of_two_send_exactly_two(engine, sessions, tmp_path, printed):
    deliver = activities(engine, sessions, tmp_path, printed, rules=TWO_A_DAY).deliver
    with sessions.begin() as session:
        add_contact(session)

    with ThreadPoolExecutor(max_workers=10) as pool:
        results = list(pool.map(lambda n: run(deliver, request(n, category="marketing")), range(50)))

    assert sorted(r.status for r in results).count("sent") == 2
    assert {r.reason for r in results if r.status == "skipped"} == {"frequency_cap:marketing_daily"}
    statuses = [row.status for row in deliveries(sessions)]
    assert (statuses.count("sent"), statuses.count("skipped"), len(statuses)) == (2, 48, 50)
    assert len(printed) == 2


def test_the_same_key_racing_with_itself_sends_once(sessions, deliver, printed):
    with sessions.begin() as session:
        add_contact(session)

    def attempt(_):
        try:
            return run(deliver, request(7)).status
        except ApplicationError as exc:  # retryable: Temporal tries again once the other attempt is done
            assert (exc.type, exc.non_retryable) == ("ConcurrentAttempt", False)
            return "retry"

    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = list(pool.map(attempt, range(8)))
    assert set(outcomes) <= {"sent", "retry"}
    assert run(deliver, request(7)).status == "sent"
    assert len(deliveries(sessions)) == 1
    assert len(printed) == 1


def test_hand_overs_take_tokens_from_the_shared_bucket_of_their_channel(engine, sessions, tmp_path, printed):
    from sqlalchemy import select as sql_select

    from carecast.store.models import RateBucket

    paced = HouseRules(default_timezone="UTC", send_rates={"email": 1000})
    delivery = activities(engine, sessions, tmp_path, printed, rules=paced)
    with sessions.begin() as session:
        for n in range(5):
            add_contact(session, f"c-{n}")
    outcomes = delivery.deliver_batch([request(n, contact_id=f"c-{n}") for n in range(5)])
    assert [o.status for o in outcomes] == ["sent"] * 5
    with sessions() as session:
        bucket = session.scalars(sql_select(RateBucket)).one()
    # five taken (plus at most a refill) from the lane of transactional and care: 20 % of the rate
    assert bucket.channel == "email:care" and bucket.tokens <= 200 - 5 + 1


def test_marketing_and_care_emails_carry_one_click_unsubscribe_and_the_house_sender(sessions, engine, tmp_path):
    rules = HouseRules(email=EmailIdentity("Acme Care <care@acme.example>", None, "1 Main St", "unsub@acme.example"))
    outbox = tmp_path / "outbox"
    deliver = activities(engine, sessions, tmp_path, [], rules=rules).deliver
    with sessions.begin() as session:
        add_contact(session)
    run(deliver, request(category="care"))
    run(deliver, request(n=1, category="transactional"))
    care, transactional = (message_from_bytes(p.read_bytes()) for p in sorted(outbox.iterdir()))
    token = care["List-Unsubscribe"].partition("/u/")[2].partition(">")[0]
    assert care["List-Unsubscribe"] == (
        f"<https://care.example.com/u/{token}>, <mailto:unsub@acme.example?subject=unsubscribe%20{token}>"
    )
    assert LinkSigner("test secret", "https://care.example.com").read(token).contact_id == "c-1"
    assert care["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert care["From"] == "Acme Care <care@acme.example>"
    assert transactional["List-Unsubscribe"] is None


def test_a_campaign_started_again_sends_at_once_and_a_stopped_one_does_not(sessions, deliver):
    with sessions.begin() as session:
        add_contact(session)
        control_campaign(session, "welcome", "stop")
    assert (run(deliver, request(1)).status, run(deliver, request(1)).reason) == ("skipped", "campaign_stopped")
    with sessions.begin() as session:
        control_campaign(session, "welcome", "start")
    assert run(deliver, request(2)).status == "sent"  # within the second the worker remembers "stopped"


def test_a_contacts_own_limit_counts_over_its_own_window_past_the_houses(engine, sessions, tmp_path, printed):
    deliver = activities(engine, sessions, tmp_path, printed, rules=TWO_A_DAY).deliver  # the house counts a day
    with sessions.begin() as session:
        add_contact(session)
        session.flush()
        session.get(Preferences, "c-1").frequency_limit = {"max": 2, "per": "90d"}
        for n, days_ago in enumerate((60, 45)):
            session.add(Delivery(
                idempotency_key=f"earlier-{n}", workflow_id="w", campaign_id="welcome", campaign_version=1,
                category="marketing", step_id="welcome_email", contact_id="c-1", channel="email",
                status="sent", sent_at=utcnow() - timedelta(days=days_ago), status_history=[],
            ))  # fmt: skip
    result = run(deliver, request(category="marketing"))
    assert (result.status, result.reason) == ("skipped", "frequency_cap:contact")
    assert printed == []


class TalkativeProvider:
    """A provider whose refusals name the recipient, as Twilio's and SendGrid's do."""

    name = "talkative"
    idempotent = False

    def __init__(self, kind: str) -> None:
        self.kind = kind

    def send(self, message):
        raise ProviderError(
            f"The 'To' {message.to} (or +1 415 555 0199, or bob@example.org) was refused", kind=self.kind
        )


@pytest.mark.parametrize("kind", ["temporary", "rejected", "invalid_address", "auth"])
def test_a_providers_error_reaches_temporal_without_the_addresses_in_it(engine, sessions, tmp_path, printed, kind):
    deliver = activities(engine, sessions, tmp_path, printed, provider=TalkativeProvider(kind)).deliver
    with sessions.begin() as session:
        add_contact(session)
    with pytest.raises(ApplicationError) as failure:
        run(deliver, request(channels=("email",)))
    said = str(failure.value)
    assert "was refused" in said and "ada@example.com" not in said
    assert "415" not in said and "bob@" not in said
    [row] = deliveries(sessions)
    assert "ada@example.com" in row.status_history[-1]["error"]  # the store keeps what the provider said


class NoAnswerProvider:
    """Takes each message, but answers the first `silent` hand-overs only after the client gave up."""

    name = "no-answer"
    idempotent = False

    def __init__(self, silent: int) -> None:
        self.silent = silent
        self.taken = []

    def send(self, message):
        self.taken.append(message.delivery_id)
        if len(self.taken) <= self.silent:
            raise ProviderError("did not answer after the request was sent: ReadTimeout", kind="uncertain")
        return ProviderReceipt(self.name, f"m-{len(self.taken)}")


def test_an_uncertain_marketing_message_is_never_sent_again_and_still_counts(engine, sessions, tmp_path, printed):
    provider = NoAnswerProvider(silent=1)
    deliver = activities(engine, sessions, tmp_path, printed, rules=TWO_A_DAY, provider=provider).deliver
    with sessions.begin() as session:
        add_contact(session)
    first = run(deliver, request(category="marketing"))
    again = run(deliver, request(category="marketing"))  # a retry of the same step
    assert (first.status, first.reason) == (again.status, again.reason) == ("uncertain", "no_answer")
    assert provider.taken == [first.delivery_id]
    [row] = deliveries(sessions)
    assert row.sent_at is not None  # it may be out: it counts toward caps
    assert [h["status"] for h in row.status_history] == ["reserved", "sending", "uncertain"]


@pytest.mark.parametrize(("silent", "outcome"), [(1, "sent"), (2, "uncertain")])
def test_an_uncertain_confirmation_is_sent_once_more_after_a_delay(
    engine, sessions, tmp_path, printed, silent, outcome
):
    provider, clock = NoAnswerProvider(silent), Clock()
    deliver = activities(engine, sessions, tmp_path, printed, provider=provider, clock=clock).deliver
    with sessions.begin() as session:
        add_contact(session)
    with pytest.raises(ApplicationError) as first:
        run(deliver, request(category="transactional"))
    assert (first.value.type, first.value.next_retry_delay) == ("ProviderUncertain", RESEND_UNCERTAIN_AFTER)
    assert not first.value.non_retryable
    with pytest.raises(ApplicationError, match="may be tried again"):
        run(deliver, request(category="transactional"))  # a retry before the delay is told to wait
    clock.wait(RESEND_UNCERTAIN_AFTER)
    second = run(deliver, request(category="transactional"))  # Temporal's retry, after the delay
    third = run(deliver, request(category="transactional"))  # any later retry hands nothing over
    assert second.status == third.status == outcome
    assert len(provider.taken) == 2  # at most one duplicate, never more
    [row] = deliveries(sessions)
    statuses = [h["status"] for h in row.status_history]
    assert statuses == ["reserved", "sending", "uncertain", "sending", outcome]  # both attempts on record


class RefusedKeyProvider:
    """A provider whose key the operator got wrong: every hand-over refused as SendGrid refuses it."""

    name = "refused-key"
    idempotent = False

    def send(self, message):
        raise ProviderError("SendGrid refused the API key (401): check SENDGRID_API_KEY", kind="auth")


def test_a_refused_key_holds_the_message_until_it_is_fixed_then_it_goes(engine, sessions, tmp_path, printed):
    began = utcnow()
    waiting = request(category="transactional", held_since=began, max_hold_seconds=2 * 86400)
    with sessions.begin() as session:
        add_contact(session)
    refused = activities(engine, sessions, tmp_path, printed, provider=RefusedKeyProvider()).deliver
    with pytest.raises(ApplicationError) as failure:
        run(refused, waiting)
    assert (failure.value.type, failure.value.non_retryable) == ("ProviderAuthFailed", False)
    assert failure.value.next_retry_delay == timedelta(seconds=30)
    fixed = activities(engine, sessions, tmp_path, printed, clock=lambda: began + timedelta(hours=5)).deliver
    assert run(fixed, waiting).status == "sent"  # the worker restarted with the right key, hours later
    assert len(printed) == 1


def test_a_refused_key_not_fixed_within_the_hold_fails_the_message_with_that_reason(
    engine, sessions, tmp_path, printed
):
    began = utcnow()
    waiting = request(category="transactional", held_since=began, max_hold_seconds=2 * 86400)
    with sessions.begin() as session:
        add_contact(session)
    refused = activities(engine, sessions, tmp_path, printed, provider=RefusedKeyProvider()).deliver
    with pytest.raises(ApplicationError):
        run(refused, waiting)
    late = activities(engine, sessions, tmp_path, printed, provider=RefusedKeyProvider(),
                      clock=lambda: began + timedelta(days=2, minutes=1)).deliver  # fmt: skip
    result = run(late, waiting)
    assert (result.status, result.reason) == ("failed", "provider_auth_failed")


def test_an_attempt_past_its_deadline_hands_nothing_over(sessions, engine, tmp_path, printed):
    provider = CountingProvider()
    deliver = activities(engine, sessions, tmp_path, printed, provider=provider).deliver
    with sessions.begin() as session:
        add_contact(session)
    late = deliver_attempt()  # its start-to-close deadline is now: a retry may be sending this very message
    late.info = replace(late.info, started_time=utcnow() - DELIVER_TIMEOUT)
    with pytest.raises(ApplicationError, match="ran out of time before the hand-over") as failure:
        late.run(deliver, request(category="care"))
    assert not failure.value.non_retryable and provider.sent == []
    [row] = deliveries(sessions)
    assert (row.status, row.sent_at) == ("reserved", None)


def test_a_key_refused_all_day_waits_at_most_the_longest_backoff(sessions, engine, tmp_path, printed):
    deliver = activities(engine, sessions, tmp_path, printed, provider=RefusedKeyProvider()).deliver
    with sessions.begin() as session:
        add_contact(session)
    fiftieth = deliver_attempt()
    fiftieth.info = replace(fiftieth.info, attempt=50)
    with pytest.raises(ApplicationError) as failure:
        fiftieth.run(deliver, request(category="transactional", held_since=utcnow(), max_hold_seconds=2 * 86400))
    assert failure.value.next_retry_delay == timedelta(minutes=15)


def test_a_confirmation_a_crashed_attempt_may_have_sent_is_not_sent_a_third_time(sessions, engine, tmp_path, printed):
    provider = NoAnswerProvider(silent=1)
    deliver = activities(engine, sessions, tmp_path, printed, provider=provider).deliver
    with sessions.begin() as session:
        add_contact(session)
        session.add(crashed_mid_send("transactional"))  # the first hand-over: maybe out
    result = run(deliver, request(category="transactional"))  # the resend, which gets no answer either
    again = run(deliver, request(category="transactional"))
    assert result.status == again.status == "uncertain" and len(provider.taken) == 1


class FlakyThenSilentProvider(NoAnswerProvider):
    """No answer to the first hand-over, a 503 to the resend, then no answer again."""

    def send(self, message):
        self.taken.append(message.delivery_id)
        if len(self.taken) == 2:
            raise ProviderError("503 from provider")
        raise ProviderError("did not answer after the request was sent", kind="uncertain")


def test_a_resend_refused_outright_does_not_earn_the_message_another(sessions, engine, tmp_path, printed):
    provider, clock = FlakyThenSilentProvider(silent=0), Clock()
    deliver = activities(engine, sessions, tmp_path, printed, provider=provider, clock=clock).deliver
    with sessions.begin() as session:
        add_contact(session)
    for _ in range(2):  # uncertain, resend due; then the resend meets a 503 (never left)
        with pytest.raises(ApplicationError):
            run(deliver, request(category="care"))
        clock.wait(RESEND_UNCERTAIN_AFTER)
    last = run(deliver, request(category="care"))  # the resend again, no answer: the end of it
    assert (last.status, last.reason) == ("uncertain", "no_answer")
    assert run(deliver, request(category="care")).status == "uncertain" and len(provider.taken) == 3


class BrokenProvider:
    name = "broken"
    idempotent = False

    def send(self, message):
        raise ssl.SSLError("record layer failure")  # what a TLS failure mid-answer raises


def test_a_failure_the_channel_did_not_foresee_leaves_the_message_uncertain(sessions, engine, tmp_path, printed):
    deliver = activities(engine, sessions, tmp_path, printed, provider=BrokenProvider()).deliver
    with sessions.begin() as session:
        add_contact(session)
    result = run(deliver, request(category="marketing"))
    assert (result.status, result.reason) == ("uncertain", "no_answer")


def test_a_resend_is_withheld_when_the_address_was_suppressed_meanwhile(engine, sessions, tmp_path, printed):
    provider, clock = NoAnswerProvider(silent=1), Clock()
    deliver = activities(engine, sessions, tmp_path, printed, provider=provider, clock=clock).deliver
    with sessions.begin() as session:
        add_contact(session)
    with pytest.raises(ApplicationError):
        run(deliver, request(category="transactional", channels=("email",)))
    clock.wait(RESEND_UNCERTAIN_AFTER)
    with sessions.begin() as session:  # the customer reported the first copy as spam before the resend was due
        add_suppression(session, "email", "ada@example.com", "spam_complaint", "sendgrid:spamreport")
    again = run(deliver, request(category="transactional", channels=("email",)))
    assert (again.status, again.reason) == ("uncertain", "no_answer")
    assert len(provider.taken) == 1
    [row] = deliveries(sessions)
    assert row.retry_at is None and row.status_history[-1]["withheld"] == "suppressed"


def test_a_care_resend_waits_for_quiet_hours_to_end(engine, sessions, tmp_path, printed):
    provider = NoAnswerProvider(silent=1)
    quiet_nights = HouseRules(default_timezone="UTC", quiet_hours=QuietHours(time(21, 0), time(8, 0)))
    now = [datetime(2026, 6, 10, 20, 59, tzinfo=UTC)]
    deliver = activities(engine, sessions, tmp_path, printed, quiet_nights, provider, clock=lambda: now[0]).deliver
    with sessions.begin() as session:
        add_contact(session, timezone="UTC", sms_consent=True)
    care = request(category="care", channels=("sms",))
    with pytest.raises(ApplicationError):
        run(deliver, care)
    now[0] += RESEND_UNCERTAIN_AFTER  # 21:01: quiet hours have begun
    waiting = run(deliver, care)
    assert (waiting.status, waiting.reason) == ("deferred", "quiet_hours")
    assert waiting.deferred_until == datetime(2026, 6, 11, 8, 0, tzinfo=UTC)
    [row] = deliveries(sessions)
    assert (row.status, row.retry_at) == ("uncertain", waiting.deferred_until)
    now[0] = waiting.deferred_until
    assert run(deliver, care).status == "sent"
    assert len(provider.taken) == 2


def sms_unconfigured(tmp_path, printed):
    email = OutboxProvider(tmp_path / "outbox", echo=printed.append)
    return ChannelRouter({"email": email, "sms": Unconfigured("sms", "TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN")})


def test_a_channel_without_a_provider_is_passed_over_for_the_next(engine, sessions, tmp_path, printed):
    provider = sms_unconfigured(tmp_path, printed)
    deliver = activities(engine, sessions, tmp_path, printed, provider=provider).deliver
    with sessions.begin() as session:
        add_contact(session, sms_consent=True, preferred=("sms",))
    result = run(deliver, request(category="transactional", channels=("sms", "email")))
    assert (result.status, result.channel) == ("sent", "email")


def test_a_message_only_an_unconfigured_channel_may_carry_waits_for_the_fix_and_names_it(
    engine, sessions, tmp_path, printed, caplog
):
    began = utcnow()
    waiting = request(category="transactional", channels=("sms",), held_since=began, max_hold_seconds=2 * 86400)
    with sessions.begin() as session:
        add_contact(session, sms_consent=True)
    unconfigured = activities(engine, sessions, tmp_path, printed, provider=sms_unconfigured(tmp_path, printed))
    with pytest.raises(ApplicationError) as failure:
        run(unconfigured.deliver, waiting)
    assert (failure.value.type, failure.value.non_retryable) == ("ProviderNotConfigured", False)
    assert failure.value.next_retry_delay == timedelta(seconds=30)
    assert "set TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN" in caplog.text
    [row] = deliveries(sessions)
    assert (row.status, row.sent_at) == ("reserved", None) and row.retry_at is not None
    fixed = activities(engine, sessions, tmp_path, printed, clock=lambda: began + timedelta(hours=5)).deliver
    assert run(fixed, waiting).status == "sent"  # the operator set the Twilio keys and restarted the worker


def test_a_message_that_waited_its_whole_hold_for_a_provider_fails_naming_why(engine, sessions, tmp_path, printed):
    began = utcnow()
    waiting = request(category="transactional", channels=("sms",), held_since=began, max_hold_seconds=2 * 86400)
    with sessions.begin() as session:
        add_contact(session, sms_consent=True)
    provider = sms_unconfigured(tmp_path, printed)
    with pytest.raises(ApplicationError):
        run(activities(engine, sessions, tmp_path, printed, provider=provider).deliver, waiting)
    late = activities(engine, sessions, tmp_path, printed, provider=provider,
                      clock=lambda: began + timedelta(days=2, minutes=1)).deliver  # fmt: skip
    result = run(late, waiting)
    assert (result.status, result.reason) == ("failed", "provider_not_configured")


class WorkerDied(BaseException):
    """What the activity sees of a SIGKILL: nothing after this point runs."""


class DyingProvider:
    name = "dying"
    idempotent = False

    def send(self, message):
        raise WorkerDied


def test_a_slow_pages_claim_is_its_own_until_its_send_rate_could_have_handed_it_over(
    engine, sessions, tmp_path, printed
):
    slow_sms = HouseRules(default_timezone="UTC", send_rates={"sms": 1})
    began = utcnow()
    page = [request(n, category="care", channels=("sms",)) for n in range(30)]
    with sessions.begin() as session:
        add_contact(session, sms_consent=True)
    dying = activities(engine, sessions, tmp_path, printed, slow_sms, DyingProvider(), clock=lambda: began)
    with pytest.raises(WorkerDied):
        dying.deliver_batch(page)
    leases = {row.retry_at for row in deliveries(sessions)}
    assert {row.status for row in deliveries(sessions)} == {"sending"}
    assert len(leases) == 1 and leases.pop() >= began + DELIVER_TIMEOUT + timedelta(seconds=60)  # 30 at 1/s, twice
    provider = CountingProvider()
    retry = activities(
        engine,
        sessions,
        tmp_path,
        printed,
        slow_sms,
        provider,
        clock=lambda: began + DELIVER_TIMEOUT + timedelta(seconds=30),
    )
    outcomes = retry.deliver_batch(page)  # the page's retry, while the first attempt could still be handing over
    assert {o.type for o in outcomes} == {"ConcurrentAttempt"} and provider.sent == []


def test_a_message_resent_after_a_crash_mid_send_says_so_in_its_history(engine, sessions, tmp_path, printed):
    provider = CountingProvider()
    deliver = activities(engine, sessions, tmp_path, printed, provider=provider).deliver
    with sessions.begin() as session:
        add_contact(session)
        session.add(crashed_mid_send("care"))
    assert run(deliver, request(category="care")).status == "sent"
    [row] = deliveries(sessions)
    assert [(h["status"], h.get("resend")) for h in row.status_history] == [("sending", True), ("sent", None)]


def test_a_resend_cut_short_by_a_crash_is_never_followed_by_a_third_copy(engine, sessions, tmp_path, printed):
    provider = CountingProvider()
    deliver = activities(engine, sessions, tmp_path, printed, provider=provider).deliver
    with sessions.begin() as session:
        add_contact(session)
        resend_died = crashed_mid_send("transactional")
        resend_died.status_history = [{"status": "sending"}, {"status": "uncertain", "reason": "no_answer_resend_due"},
                                      {"status": "sending", "resend": True}]  # fmt: skip
        session.add(resend_died)
    result = run(deliver, request(category="transactional"))
    assert (result.status, result.reason) == ("uncertain", "crashed_while_sending")
    assert provider.sent == []


class DiesAfter:
    """A provider that takes `lives` messages, then the worker dies mid-page."""

    name = "dies-after"
    idempotent = False

    def __init__(self, lives: int) -> None:
        self.lives, self.lock = lives, threading.Lock()

    def send(self, message):
        with self.lock:
            self.lives -= 1
            if self.lives < 0:
                raise WorkerDied
        return ProviderReceipt(self.name, f"m-{message.delivery_id}")


def test_a_page_that_dies_midway_leaves_only_its_unrecorded_chunks_in_doubt(engine, sessions, tmp_path, printed):
    # marketing's 80 % of 125/s: a second's burst, then 10 every 0.1 s
    paced = HouseRules(default_timezone="UTC", send_rates={"email": 125})
    page = [request(n, category="marketing", channels=("email",)) for n in range(200)]
    with sessions.begin() as session:
        add_contact(session)
    dying = activities(engine, sessions, tmp_path, printed, paced, DiesAfter(170))
    with pytest.raises(WorkerDied):
        dying.deliver_batch(page)
    rows = deliveries(sessions)
    statuses = Counter(row.status for row in rows)
    assert statuses["sent"] >= 100 and statuses["sending"] == 200 - statuses["sent"]
    in_doubt = Counter(row.reason for row in rows if row.status == "sending")
    # handed over since the last record (maybe out): in doubt; the 20 after the fatal chunk of 10 never left
    assert in_doubt["claimed"] == 20 and in_doubt["handing_over"] == statuses["sending"] - 20


@pytest.mark.parametrize("category", ["marketing", "transactional"])
def test_a_page_claim_that_died_before_its_hand_over_goes_out_once_and_without_doubt(
    engine, sessions, tmp_path, printed, category
):
    provider = CountingProvider()
    deliver = activities(engine, sessions, tmp_path, printed, provider=provider).deliver
    with sessions.begin() as session:
        add_contact(session)
        never_left = crashed_mid_send(category)
        never_left.reason = "claimed"
        session.add(never_left)
    result = run(deliver, request(category=category))
    assert (result.status, len(provider.sent)) == ("sent", 1)
    [row] = deliveries(sessions)
    assert not any(e.get("resend") for e in row.status_history) and row.reason is None


class Scripted:
    """Answers each hand-over as scripted (an error to raise, or None for a receipt), then receipts."""

    name = "scripted"
    idempotent = False

    def __init__(self, *answers) -> None:
        self.answers, self.taken = list(answers), []

    def send(self, message):
        self.taken.append(message.delivery_id)
        answer = self.answers.pop(0) if self.answers else None
        if answer is not None:
            raise answer
        return ProviderReceipt(self.name, f"m-{len(self.taken)}")


def test_a_takeover_resend_refused_for_now_is_still_the_one_resend(engine, sessions, tmp_path, printed):
    unavailable = ProviderError("503", kind="temporary")
    silent = ProviderError("did not answer after the request was sent", kind="uncertain")
    provider, clock = Scripted(unavailable, silent), Clock()
    deliver = activities(engine, sessions, tmp_path, printed, provider=provider, clock=clock).deliver
    with sessions.begin() as session:
        add_contact(session)
        session.add(crashed_mid_send("transactional"))  # the first copy may be out
    with pytest.raises(ApplicationError, match="503"):
        run(deliver, request(category="transactional"))  # the resend, refused for now: it never left
    clock.wait(timedelta(minutes=1))
    again = run(deliver, request(category="transactional"))  # still the resend: no answer ends it
    assert (again.status, again.reason) == ("uncertain", "no_answer")
    clock.wait(RESEND_UNCERTAIN_AFTER)
    assert run(deliver, request(category="transactional")).status == "uncertain"
    assert len(provider.taken) == 2  # with the crashed attempt's, two copies at most


def test_a_late_record_of_an_attempt_whose_message_was_taken_over_changes_nothing(sessions):
    from carecast.delivery import ledger

    with sessions.begin() as session:
        add_contact(session)
        taken_over = crashed_mid_send("care")
        taken_over.retry_at = utcnow() + timedelta(minutes=1)  # the newer attempt's lease
        session.add(taken_over)
    with sessions.begin() as session:
        late = ledger.Outcomes(lease=utcnow() - timedelta(minutes=1))  # the first attempt's
        late.add_not_sent(taken_over.id, ledger.Status.RESERVED, None, error="503", kind="temporary")
        late.add_uncertain(taken_over.id, "no_answer", None, error="read timed out")
        ledger.record(session, late)
    [row] = deliveries(sessions)
    assert (row.status, row.status_history) == ("sending", [])


def test_an_order_confirmation_never_waits_behind_a_broadcasts_reserved_sends(
    engine, sessions, tmp_path, printed, monkeypatch
):
    """A marketing page reserves its sends seconds ahead; the confirmation after it goes at once, from the
    share of the rate kept for transactional and care messages (the waits are recorded, not slept)."""
    import time as real_time
    from types import SimpleNamespace

    import activities.deliver as deliver_module

    waits: list[float] = []
    monkeypatch.setattr(deliver_module, "time", SimpleNamespace(sleep=waits.append, monotonic=real_time.monotonic))
    paced = HouseRules(default_timezone="UTC", send_rates={"email": 10})  # 8/s for marketing, 2/s kept for care
    delivery = activities(engine, sessions, tmp_path, printed, rules=paced)
    with sessions.begin() as session:
        add_contact(session)
    page = delivery.deliver_batch([request(n, category="marketing", channels=("email",)) for n in range(40)])
    assert {o.status for o in page} == {"sent"} and sum(waits) > 3  # 40 at 8/s: reserved four seconds ahead
    waits.clear()
    [confirmation] = delivery.deliver_batch([request(99, channels=("email",))])
    assert (confirmation.status, waits) == ("sent", [])
