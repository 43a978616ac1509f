"""Running carecast: `dev`, `worker`, `api`, `codec-server`, `fake-providers`."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from carecast.cli.common import (
    app,
    configure_logging,
    fail,
    load_settings,
    open_store,
    require_shared_secret,
    say,
)
from carecast.config import ConfigError


@app.command()
def dev() -> None:
    """Start everything on this machine: Temporal dev server, store, worker, API, local outbox."""
    from carecast.dev import DevServerError, run_dev
    from carecast.ports import PortInUseError

    configure_logging()
    settings = load_settings()
    try:
        asyncio.run(run_dev(settings, say))
    except (PortInUseError, DevServerError, ConfigError) as exc:
        fail(str(exc))


@app.command()
def worker(
    queues: Annotated[
        str,
        typer.Option(help="what this worker runs: journeys, broadcasts, or both (scale each on its own)"),
    ] = "journeys,broadcasts",
) -> None:
    """Run a worker against CARECAST_TEMPORAL_ADDRESS (as many as you like, on any machine)."""
    from carecast.metrics import serve_metrics, temporal_runtime
    from carecast.providers import build_provider, describe_providers
    from carecast.temporal import connect
    from carecast.worker import QueuesError, carecast_worker, parse_roles

    configure_logging()
    try:
        roles = parse_roles(queues)
    except QueuesError as exc:
        fail(str(exc))
    settings = load_settings()
    require_shared_secret(settings)
    engine = open_store(settings)

    async def run() -> None:
        runtime = None
        try:
            if settings.temporal_metrics_port is not None:
                runtime = temporal_runtime(settings.metrics_host, settings.temporal_metrics_port)
                say(f"metrics    Temporal SDK's at {settings.metrics_host}:{settings.temporal_metrics_port}/metrics")
            if settings.metrics_port is not None:
                serve_metrics(settings.metrics_host, settings.metrics_port)
                say(f"metrics    carecast's at {settings.metrics_host}:{settings.metrics_port}/metrics")
        except (OSError, ValueError) as exc:  # the port is taken, or the host is not this machine's
            fail(f"cannot serve metrics on {settings.metrics_host} (CARECAST_METRICS_PORT, "
                 f"CARECAST_TEMPORAL_METRICS_PORT): {exc}")  # fmt: skip
        client = await connect(settings, runtime)
        try:
            provider = build_provider(settings)
            say(describe_providers(settings))
            async with carecast_worker(client, settings, engine, provider, roles=roles) as workers:
                for queue in workers.by_queue:
                    say(f"worker     polling task queue {queue!r} on {settings.temporal_address}")
                await workers.run()
        finally:
            engine.dispose()

    try:
        asyncio.run(run())
    except ConfigError as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        pass


@app.command()
def api() -> None:
    """Serve the HTTP API on CARECAST_API_HOST:CARECAST_API_PORT."""
    import uvicorn

    from carecast.api.app import create_app
    from carecast.api.logs import log_config

    settings = load_settings()
    require_shared_secret(settings)
    uvicorn.run(create_app(settings), host=settings.api_host, port=settings.api_port, log_config=log_config())


@app.command("codec-server")
def codec_server(
    port: Annotated[int | None, typer.Option(help="port on 127.0.0.1 (default: CARECAST_CODEC_PORT, 8081)")] = None,
    ui_origin: Annotated[
        list[str] | None,
        typer.Option("--ui-origin", help="the Temporal UI's origin, e.g. https://cloud.temporal.io (repeat for more)"),
    ] = None,
) -> None:
    """Let the Temporal UI and CLI read sealed payloads: a codec endpoint on 127.0.0.1 for your own browser.

    Point the UI's codec endpoint (Temporal Cloud: the namespace's "Codec Server" setting; a
    self-hosted UI: TEMPORAL_CODEC_ENDPOINT) or `temporal --codec-endpoint` at it.
    """
    import uvicorn

    from carecast.api.codec import codec_app, ui_origins
    from carecast.temporal_codec import EncryptionCodec

    settings = load_settings()
    if not settings.temporal_payload_key:
        fail("CARECAST_TEMPORAL_PAYLOAD_KEY is not set: payloads are not sealed, so there is nothing to decode")
    origins = ui_origin or ui_origins(settings)
    port = port or settings.codec_port
    codec = EncryptionCodec(settings.temporal_payload_key, previous=settings.previous_payload_keys)
    say(f"codec      http://127.0.0.1:{port} (for {', '.join(origins)}); Ctrl-C stops it")
    uvicorn.run(codec_app(codec, origins), host="127.0.0.1", port=port, log_level="warning")


@app.command("fake-providers")
def fake_providers(
    port: Annotated[int, typer.Option(help="port on 127.0.0.1")] = 8025,
    carecast_url: Annotated[str | None, typer.Option(help="where callbacks go; CARECAST_PUBLIC_URL by default")] = None,
    callbacks: Annotated[bool, typer.Option(help="post signed callbacks back (off: only receive)")] = True,
) -> None:
    """Serve fake SendGrid and Twilio for demos; they post signed callbacks back to carecast every second."""
    import signal
    import threading

    from carecast.fakes.server import FakeProviders

    settings = load_settings()
    url = (carecast_url or settings.public_url).rstrip("/")
    fakes = FakeProviders(
        sendgrid_webhook_url=f"{url}/webhooks/sendgrid" if callbacks else None,
        twilio_inbound_url=f"{url}/webhooks/twilio/inbound" if callbacks else None,
        auto_callbacks=callbacks,
        callbacks=callbacks,
        keep=1000,  # a long demo or a benchmark must not grow without end
        port=port,
    )
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with fakes:
        say(f"fakes      SendGrid and Twilio on {fakes.url}; callbacks go to {url if callbacks else 'nowhere'}")
        say("           start carecast (worker and api) with:")
        for name, value in (
            ("SENDGRID_API_KEY", fakes.sendgrid.api_key),
            ("SENDGRID_API_HOST", fakes.url),
            ("SENDGRID_WEBHOOK_PUBLIC_KEY", fakes.sendgrid.signer.public_key),
            ("TWILIO_ACCOUNT_SID", fakes.twilio.account_sid),
            ("TWILIO_AUTH_TOKEN", fakes.twilio.auth_token),
            ("TWILIO_API_BASE_URL", fakes.url),
            ("TWILIO_FROM_NUMBER", fakes.twilio.number),
            ("CARECAST_PUBLIC_URL", url),
        ):
            say(f"           export {name}={value}")
        say(f"           a reply by SMS: curl -d From=+14155550101 -d Body=STOP {fakes.url}/_fake/twilio/inbound")
        stop.wait()
    say("stopped")
