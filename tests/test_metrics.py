"""Metrics in Prometheus' format: what a worker counts, its hand-overs timed, and the Temporal SDK's own."""

import socket
import urllib.request
from dataclasses import replace

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import select
from temporalio.client import Client
from temporalio.exceptions import ApplicationError

from carecast.channels.base import ProviderReceipt
from carecast.channels.outbox import OutboxProvider
from carecast.channels.router import ChannelRouter, Unconfigured, unconfigured_channels
from carecast.config import ConfigError, Settings
from carecast.intake.ingest import ingest_event
from carecast.intake.record import IncomingEvent
from carecast.metrics import TimedProvider, observe_outcome, serve_metrics, temporal_runtime
from carecast.providers import build_provider
from carecast.store.models import Delivery, utcnow
from carecast.temporal import DATA_CONVERTER
from carecast.worker import carecast_worker
from tests.factories import add_contact, deploy
from tests.skipping import skip_until_closed
from workflows.journey.contract import DeliverResult


def sample(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        return answer.read().decode()


class Request:
    category = "marketing"


def test_outcomes_are_counted_by_channel_category_and_outcome_and_held_ones_by_reason():
    sent = sample("carecast_messages_total", category="marketing", channel="sms", outcome="sent")
    quiet = sample("carecast_messages_held_total", outcome="deferred", reason="quiet_hours")
    failed = sample("carecast_messages_total", category="marketing", channel="", outcome="failed")
    observe_outcome(Request(), DeliverResult(1, "sent", "sms"))
    observe_outcome(Request(), DeliverResult(2, "deferred", "email", "quiet_hours"))
    retry = sample("carecast_messages_held_total", outcome="retry", reason="ProviderUnavailable")
    observe_outcome(Request(), ApplicationError("a broken template", non_retryable=True))
    observe_outcome(Request(), ApplicationError("SendGrid answered 503", type="ProviderUnavailable"))
    assert sample("carecast_messages_held_total", outcome="retry", reason="ProviderUnavailable") == retry + 1
    assert sample("carecast_messages_total", category="marketing", channel="sms", outcome="sent") == sent + 1
    assert sample("carecast_messages_held_total", outcome="deferred", reason="quiet_hours") == quiet + 1
    assert sample("carecast_messages_total", category="marketing", channel="", outcome="failed") == failed + 1


class OneAtATime:
    name, idempotent = "one", False

    def send(self, message):
        return ProviderReceipt("one", "m-1")


class InBatches(OneAtATime):
    name = "batches"

    def send_many(self, messages):
        return [self.send(m) for m in messages]


def test_hand_overs_are_timed_and_a_provider_keeps_its_way_of_sending():
    single, batched = TimedProvider(OneAtATime()), TimedProvider(InBatches())
    assert not hasattr(single, "send_many") and hasattr(batched, "send_many")  # hand_over asks which
    before = sample("carecast_provider_request_seconds_count", provider="batches")
    batched.send_many([object(), object()])
    assert sample("carecast_provider_request_seconds_count", provider="batches") == before + 1


def test_the_configured_providers_are_timed_each_and_unconfigured_channels_still_show(settings):
    router = build_provider(replace(settings, sendgrid_api_key="SG.key", sendgrid_api_host="http://127.0.0.1:9"))
    assert set(unconfigured_channels(router)) == {"sms", "voice"}  # so a message that may go by email does
    assert isinstance(router.providers["email"], TimedProvider) and router.providers["email"].name == "sendgrid"
    assert isinstance(build_provider(settings), TimedProvider)  # the outbox, under carecast dev


@pytest.mark.store
async def test_a_worker_serves_its_counts_and_the_temporal_sdks_metrics(time_skipping_env, settings, engine, sessions):
    ours, sdk = free_port(), free_port()
    serve_metrics("127.0.0.1", ours)
    target = time_skipping_env.client.service_client.config.target_host
    client = await Client.connect(target, data_converter=DATA_CONVERTER, runtime=temporal_runtime("127.0.0.1", sdk))
    with sessions.begin() as session:
        deploy(session, settings.templates_dir, settings.campaigns_dir / "welcome.yaml")
        add_contact(session)
    settings = replace(settings, task_queue="metrics")
    before = sample("carecast_messages_total", category="transactional", channel="email", outcome="sent")
    async with carecast_worker(client, settings, engine, build_provider(settings)) as worker, worker:
        event = IncomingEvent("m-1", "c-1", "signed_up", utcnow())
        [journey] = (await ingest_event(client, sessions, settings.task_queue, event)).started
        await skip_until_closed(time_skipping_env, journey)
    assert sample("carecast_messages_total", category="transactional", channel="email", outcome="sent") == before + 1
    assert 'carecast_messages_total{category="transactional",channel="email",outcome="sent"}' in scrape(ours)
    assert "carecast_provider_request_seconds_bucket" in scrape(ours)
    assert "temporal_workflow_completed" in scrape(sdk) or "temporal_request" in scrape(sdk)


@pytest.mark.store
async def test_a_message_goes_by_the_configured_channel_when_the_preferred_one_has_no_provider(
    time_skipping_env, settings, engine, sessions
):
    """As a worker with SendGrid but no Twilio meets it: a care message to a contact who prefers texts goes by
    email, as the policy chooses among the channels a provider is configured for (what the metrics must not hide)."""
    with sessions.begin() as session:
        deploy(session, settings.templates_dir, settings.campaigns_dir / "delivery_delay.yaml")
        # ids of its own: the test server is shared, and a journey id it has seen is never started again
        add_contact(session, "c-no-twilio", sms_consent=True, preferred=("sms",), timezone="UTC")
    settings = replace(settings, task_queue="no-twilio")
    only_email = ChannelRouter({"email": OutboxProvider(settings.outbox_dir, echo=lambda line: None),
                                "sms": Unconfigured("sms", "TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN"),
                                "voice": Unconfigured("voice", "TWILIO_FROM_NUMBER")})  # fmt: skip
    async with carecast_worker(time_skipping_env.client, settings, engine, only_email) as worker, worker:
        data = {"order_id": "NT-1", "new_eta": "Friday"}
        event = IncomingEvent("late-no-twilio", "c-no-twilio", "delivery_delayed", utcnow(), data)
        [journey] = (await ingest_event(time_skipping_env.client, sessions, settings.task_queue, event)).started
        await skip_until_closed(time_skipping_env, journey)
    with sessions() as session:
        apology = session.scalars(select(Delivery).where(Delivery.step_id == "apologise")).one()
    assert (apology.status, apology.channel) == ("sent", "email")


def test_the_two_metrics_ports_cannot_be_one(tmp_path):
    env = {"CARECAST_HOME": str(tmp_path), "CARECAST_METRICS_PORT": "9464", "CARECAST_TEMPORAL_METRICS_PORT": "9464"}
    with pytest.raises(ConfigError, match="CARECAST_METRICS_PORT and CARECAST_TEMPORAL_METRICS_PORT are both 9464"):
        Settings.from_env(env=env)
    both = Settings.from_env(env=env | {"CARECAST_TEMPORAL_METRICS_PORT": "9465"})
    assert (both.metrics_port, both.temporal_metrics_port, both.metrics_host) == (9464, 9465, "127.0.0.1")
