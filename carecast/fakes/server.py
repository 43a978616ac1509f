"""Fake SendGrid and Twilio on one 127.0.0.1 port, for tests (a fixture) and demos (`carecast fake-providers`).

Point carecast at them with SENDGRID_API_HOST / TWILIO_API_BASE_URL = `url`.
Callbacks they owe (status callbacks, event batches, inbound SMS) are posted by
`flush_callbacks()`, or every second by themselves with `auto_callbacks=True`.
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass
from urllib.parse import parse_qsl

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from carecast.fakes import openapi
from carecast.fakes.recording import Callback, InjectedFailure, Journal, Received
from carecast.fakes.sendgrid import FakeSendGrid
from carecast.fakes.twilio import FakeTwilio

CALLBACK_TIMEOUT_SECONDS = 10.0


class ThreadedServer:
    """Serves an ASGI app with uvicorn on a thread, on 127.0.0.1 and a free port."""

    def __init__(self, app, host: str = "127.0.0.1", port: int = 0) -> None:
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((host, port))
        self.url = f"http://{host}:{self._socket.getsockname()[1]}"
        self._server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True)

    def start(self) -> ThreadedServer:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError(f"the server at {self.url} did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._socket.close()


@dataclass(frozen=True)
class Delivered:
    url: str
    status: int


class FakeProviders:
    def __init__(
        self,
        *,
        sendgrid_api_key: str = "SG.fake-key",
        twilio_account_sid: str = "AC" + "0" * 32,
        twilio_auth_token: str = "fake-auth-token",
        sendgrid_webhook_url: str | None = None,
        twilio_inbound_url: str | None = None,
        auto_callbacks: bool = False,
        callbacks: bool = True,
        keep: int | None = None,
        port: int = 0,
    ) -> None:
        self.journal = Journal(keep=keep, owes_callbacks=callbacks)
        self.sendgrid = FakeSendGrid(self.journal, sendgrid_api_key, sendgrid_webhook_url)
        self.twilio = FakeTwilio(self.journal, twilio_account_sid, twilio_auth_token, twilio_inbound_url)
        control = [Route("/_fake/twilio/inbound", self._inbound, methods=["POST"])]
        self.app = Starlette(routes=self.sendgrid.routes() + self.twilio.routes() + control)
        self._server = ThreadedServer(self.app, port=port)
        self.url = self._server.url
        self._auto = auto_callbacks
        self._stop = threading.Event()
        self._poster = threading.Thread(target=self._post_forever, daemon=True)

    def __enter__(self) -> FakeProviders:
        openapi.warm()  # seconds of parsing, done before the first request could time out on it
        self._server.start()
        if self._auto:
            self._poster.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._poster.is_alive():
            self._poster.join(timeout=CALLBACK_TIMEOUT_SECONDS)
        self._server.stop()

    # what was received

    @property
    def received(self) -> list[Received]:
        return list(self.journal.received)

    def received_by(self, provider: str, path_suffix: str = "") -> list[Received]:
        return [r for r in self.received if r.provider == provider and r.path.endswith(path_suffix)]

    @property
    def invalid(self) -> list[Received]:
        """Requests that broke the official description; a correct client makes none."""
        return [r for r in self.received if r.errors]

    # making them misbehave

    def fail_next(
        self, provider: str, status: int, *, retry_after: float | None = None, times: int = 1, delay: float = 0.0
    ) -> None:
        """The next `times` valid requests to `provider` answer `status` (202/201: only slowly, after `delay`)."""
        self.journal.fail_next(provider, InjectedFailure(status, retry_after, delay=delay), times)

    # the way back

    def inbound_sms(self, from_number: str, body: str) -> Callback:
        return self.twilio.inbound_sms(from_number, body)

    def flush_callbacks(self) -> list[Delivered]:
        """Posts every callback owed so far, in order; returns what carecast answered."""
        results = []
        owed = self.journal.take_callbacks()
        with httpx.Client(timeout=CALLBACK_TIMEOUT_SECONDS) as client:
            for n, callback in enumerate(owed):
                try:
                    response = client.post(callback.url, content=callback.content, headers=callback.headers)
                except httpx.HTTPError:
                    for unsent in owed[n:]:
                        self.journal.owe(unsent)  # kept for the next round, in order after newer ones
                    raise
                results.append(Delivered(callback.url, response.status_code))
        return results

    def _post_forever(self) -> None:
        while not self._stop.wait(1.0):
            try:
                self.flush_callbacks()
            except httpx.HTTPError:
                continue  # carecast's API is not up yet; the next round tries again

    async def _inbound(self, request: Request) -> JSONResponse:
        """For demos: `curl -d From=+1... -d Body=STOP <url>/_fake/twilio/inbound` as if a phone replied."""
        form = dict(parse_qsl((await request.body()).decode()))
        if "From" not in form:
            return JSONResponse({"error": "post From=+1... and Body=..."}, status_code=400)
        callback = self.twilio.inbound_sms(form["From"], form.get("Body", ""))
        return JSONResponse({"queued": callback.url})
