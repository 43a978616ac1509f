"""Metrics in Prometheus' text format: each process counts what it does.

Sends happen in workers, so each worker serves its own (`CARECAST_METRICS_PORT`), and the
Temporal SDK's own metrics on another (`CARECAST_TEMPORAL_METRICS_PORT`: workflow and activity
task latencies, schedule-to-start, slots, sticky cache); the API serves its counters at
`GET /metrics`. Labels are categories, channels, outcomes and reasons, which are few: never a
contact, an address or a campaign id (whose number grows without bound).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from prometheus_client import Counter, Histogram, start_http_server
from temporalio.exceptions import ApplicationError
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

from carecast.channels.base import OutboundMessage, Provider, ProviderReceipt

MESSAGES = Counter(
    "carecast_messages", "What the deliver activity made of each message", ["category", "channel", "outcome"]
)
HELD = Counter("carecast_messages_held", "Messages skipped or deferred, by reason", ["outcome", "reason"])
PROVIDER_SECONDS = Histogram(
    "carecast_provider_request_seconds",
    "How long a hand-over to a provider took (a batch counts once)",
    ["provider"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
GUARDRAIL_BREACHES = Counter("carecast_guardrail_breaches", "Guardrails found breached, by what was done", ["action"])
EVENTS = Counter("carecast_api_events", "Events posted to the API, by what came of them", ["result"])
WEBHOOKS = Counter("carecast_webhook_requests", "Provider callbacks, by provider and result", ["provider", "result"])


def observe_outcome(request: Any, outcome: Any) -> None:
    """Counts a deliver outcome (a `DeliverResult`, or the error the activity raises for it: `failed` when it
    ends the message, else `retry`, held by the error's type — a rate limit, a provider away, not due yet)."""
    if isinstance(outcome, ApplicationError):
        if outcome.non_retryable:
            MESSAGES.labels(request.category, "", "failed").inc()
        else:
            MESSAGES.labels(request.category, "", "retry").inc()
            HELD.labels("retry", outcome.type or "").inc()
        return
    MESSAGES.labels(request.category, outcome.channel or "", outcome.status).inc()
    if outcome.status in ("skipped", "deferred"):
        HELD.labels(outcome.status, outcome.reason or "").inc()


class TimedProvider:
    """A provider whose every request is timed into PROVIDER_SECONDS, labelled with its name."""

    def __init__(self, inner: Provider) -> None:
        self.inner = inner
        self.name = inner.name
        self.idempotent = inner.idempotent
        self._seconds = PROVIDER_SECONDS.labels(inner.name)
        if hasattr(inner, "send_many"):  # only then: hand_over sends in batches when a provider can
            self.send_many = self._send_many

    def send(self, message: OutboundMessage) -> ProviderReceipt:
        began = time.perf_counter()
        try:
            return self.inner.send(message)
        finally:
            self._seconds.observe(time.perf_counter() - began)

    def _send_many(self, messages: Sequence[OutboundMessage]) -> list:
        began = time.perf_counter()
        try:
            return self.inner.send_many(messages)
        finally:
            self._seconds.observe(time.perf_counter() - began)


def serve_metrics(host: str, port: int) -> None:
    """This process's metrics at http://host:port/metrics, from a thread of their own."""
    start_http_server(port, addr=host)


def temporal_runtime(host: str, port: int) -> Runtime:
    """A Temporal runtime that serves the SDK's metrics in Prometheus' format at host:port."""
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"  # an IPv6 address in brackets
    return Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=address)))
