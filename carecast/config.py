"""Settings read from the environment, with the embedded defaults of `carecast dev`.

Every process (CLI, worker, API) builds one `Settings` at its edge and passes it
down; nothing below reads the environment itself.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.engine import make_url
from temporalio.service import TLSConfig

from carecast.contacts.kept import AddressKey
from carecast.render.links import LinkSigner
from carecast.temporal_config import TemporalConfigError, temporal_connection

TASK_QUEUE = "carecast"


class ConfigError(ValueError):
    """An environment variable holds a value carecast cannot use."""


# A key or secret shorter than this can be guessed; `python -c "import secrets; print(secrets.token_urlsafe(32))"`.
MIN_SECRET_LENGTH = 32


def _secret_env(env: dict[str, str], name: str) -> str | None:
    value = env.get(name) or None
    if value is not None and len(value) < MIN_SECRET_LENGTH:
        raise ConfigError(
            f"{name} is {len(value)} characters; use at least {MIN_SECRET_LENGTH}, e.g. the output of "
            '`python -c "import secrets; print(secrets.token_urlsafe(32))"`'
        )
    return value


# The secret `carecast dev` keeps in its home when CARECAST_SECRET_KEY is not set.
SECRET_FILE = "secret-key"


def _secret_list(env: dict[str, str], name: str) -> tuple[str, ...]:
    """A comma-separated list of secrets, each as long as a secret must be."""
    given = tuple(value.strip() for value in (env.get(name) or "").split(",") if value.strip())
    for index, value in enumerate(given, 1):
        if len(value) < MIN_SECRET_LENGTH:
            raise ConfigError(f"{name}: item {index} is {len(value)} characters; use at least {MIN_SECRET_LENGTH}")
    return given


def _read_secret(path: Path, wait_seconds: float = 5.0) -> str:
    """A secret file's value; one another process is writing this very moment is waited for, never taken empty."""
    deadline = time.monotonic() + wait_seconds
    while not (value := path.read_text().strip()):
        if time.monotonic() > deadline:
            raise ConfigError(f"{path} is empty; delete it and carecast makes a new one")
        time.sleep(0.05)
    return value


def hide_password(url: str) -> str:
    """A database URL fit to print: its password masked."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL SQLAlchemy can read: print nothing of it but its scheme
        return url.split(":", 1)[0] + ":…"


def _metrics_ports(env: dict[str, str]) -> tuple[int | None, int | None]:
    """CARECAST_METRICS_PORT and CARECAST_TEMPORAL_METRICS_PORT, which cannot share a port."""
    ours, sdk = _int_env(env, "CARECAST_METRICS_PORT", None), _int_env(env, "CARECAST_TEMPORAL_METRICS_PORT", None)
    if ours is not None and ours == sdk:
        raise ConfigError(
            f"CARECAST_METRICS_PORT and CARECAST_TEMPORAL_METRICS_PORT are both {ours}: give each its own"
        )
    return ours, sdk


def _int_env(env: dict[str, str], name: str, default: int | None) -> int | None:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a whole number") from None
    if not 1 <= value <= 65535 and name.endswith("_PORT"):
        raise ConfigError(f"{name}={value} is not a TCP port (1-65535)")
    return value


def _float_env(env: dict[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number of seconds") from None
    if value <= 0:
        raise ConfigError(f"{name}={raw!r} must be above 0 seconds")
    return value


@dataclass(frozen=True)
class Settings:
    home: Path
    database_url: str
    temporal_address: str
    temporal_namespace: str
    task_queue: str
    temporal_port: int
    temporal_ui_port: int
    api_host: str
    api_port: int
    campaigns_dir: Path
    templates_dir: Path
    outbox_dir: Path
    temporal_api_key: str | None = None
    api_key: str | None = None
    operator_key: str | None = None  # the password of /reports (HTTP Basic, any user name)
    secret_key: str | None = None
    public_url: str = ""
    sendgrid_api_key: str | None = None
    # Unset: SendGrid's public endpoint (https://api.eu.sendgrid.com for EU data residency).
    sendgrid_api_host: str | None = None
    # The "Verification Key" of SendGrid's signed event webhook (base64 DER, as SendGrid shows it).
    sendgrid_webhook_public_key: str | None = None
    twilio_account_sid: str | None = None
    twilio_auth_token: str | None = None
    # Unset: https://api.twilio.com. Twilio SMS comes from a Messaging Service or a number.
    twilio_api_base_url: str | None = None
    twilio_messaging_service_sid: str | None = None
    twilio_from_number: str | None = None
    provider_timeout_seconds: float = 10.0
    # Where a guardrail breach is POSTed as JSON (an operator's chat or pager hook); None: logged only.
    alert_webhook_url: str | None = None
    # This process's metrics (a worker's; the API serves them at /metrics), and the Temporal SDK's, each on a
    # port of its own when set (several workers on one host: one port each).
    metrics_host: str = "127.0.0.1"
    metrics_port: int | None = None
    temporal_metrics_port: int | None = None
    guardrail_check_seconds: float = 60.0  # how often, at most, news from the providers sets off a check
    api_docs: bool = False  # /docs, /redoc and /openapi.json, off unless CARECAST_API_DOCS=1
    # TLS or mTLS to Temporal, and gRPC metadata, from Temporal's client configuration (temporal_config.py).
    temporal_tls: bool | TLSConfig = False
    temporal_rpc_metadata: Mapping[str, str] = field(default_factory=dict)
    # Encrypts every payload carecast hands Temporal (carecast/temporal_codec.py); None: plain JSON.
    temporal_payload_key: str | None = None
    # Secrets used before the current ones, still read after a change: links already sent keep opening,
    # kept opt-outs keep matching, histories already written keep decoding.
    previous_secret_keys: tuple[str, ...] = ()
    previous_payload_keys: tuple[str, ...] = ()
    codec_port: int = 8081  # where `carecast codec-server` and `carecast dev` serve the UI's codec endpoint
    # Broadcasts (workflows and pages) have a task queue of their own, so a big one never sits in front
    # of a journey's confirmation; None: `task_queue` + "-broadcasts".
    broadcast_queue: str | None = None

    def local_secret(self, name: str, given: str | None) -> str:
        """`given` if set, else a random secret made once and kept in the home folder as `name`.

        Fine for one machine (`carecast dev`); several machines must share it through
        the environment (CARECAST_API_KEY, CARECAST_SECRET_KEY).
        """
        if given:
            return given
        path = self.home / name
        self.home.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:  # created whole or not at all, owner-only from its first byte: two processes starting together agree
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return _read_secret(path)
        with os.fdopen(fd, "w") as file:
            file.write(secrets.token_urlsafe(32) + "\n")
        return _read_secret(path)

    def shared_secret(self) -> str:
        """CARECAST_SECRET_KEY, else the one `carecast dev` keeps in this home; never a new one.

        The secret seals the preference links that workers put in messages and the API
        opens, and keys the hashes of kept opt-outs: every process must hold the same. A
        process that made its own (as each did before) would silently disagree with the
        others on another machine, and their links would not open. Only `carecast dev`,
        which runs everything in one home, makes one.
        """
        if self.secret_key:
            return self.secret_key
        kept = self.home / SECRET_FILE
        if kept.exists():
            return _read_secret(kept)
        raise ConfigError(
            "CARECAST_SECRET_KEY is not set: give every api, worker and command the same one (at least 32 "
            "characters), e.g. from `python -c 'import secrets; print(secrets.token_urlsafe(32))'`; "
            f"or run them in the home of `carecast dev` ({self.home}), which keeps one"
        )

    def link_signer(self) -> LinkSigner:
        return LinkSigner(self.shared_secret(), self.public_url, previous=self.previous_secret_keys)

    def address_key(self) -> AddressKey:
        """Keys the hashes under which a forgotten contact's opt-outs are kept (carecast/contacts/kept.py)."""
        return AddressKey(self.shared_secret(), previous=self.previous_secret_keys)

    @property
    def broadcast_task_queue(self) -> str:
        return self.broadcast_queue or f"{self.task_queue}-broadcasts"

    @property
    def uses_twilio(self) -> bool:
        return bool(self.twilio_account_sid and self.twilio_auth_token)

    @property
    def uses_outbox(self) -> bool:
        """True when no provider credentials are set: messages go to the local outbox."""
        return not self.sendgrid_api_key and not self.uses_twilio

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, cwd: Path | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        cwd = cwd or Path.cwd()
        home = Path(env.get("CARECAST_HOME", cwd / ".carecast")).resolve()
        temporal_port = _int_env(env, "CARECAST_TEMPORAL_PORT", 7233)
        try:
            temporal = temporal_connection(env, default_address=f"127.0.0.1:{temporal_port}")
        except TemporalConfigError as exc:
            raise ConfigError(str(exc)) from None
        task_queue = env.get("CARECAST_TASK_QUEUE") or TASK_QUEUE
        if env.get("CARECAST_BROADCAST_TASK_QUEUE") == task_queue:
            raise ConfigError(
                f"CARECAST_BROADCAST_TASK_QUEUE and CARECAST_TASK_QUEUE are both {task_queue!r}: broadcasts need a "
                f"queue of their own (unset it for {task_queue + '-broadcasts'!r})"
            )
        if env.get("CARECAST_TEMPORAL_PREVIOUS_PAYLOAD_KEYS") and not env.get("CARECAST_TEMPORAL_PAYLOAD_KEY"):
            raise ConfigError(
                "CARECAST_TEMPORAL_PREVIOUS_PAYLOAD_KEYS is set without CARECAST_TEMPORAL_PAYLOAD_KEY: sealed "
                "histories are read only with a current key; keep one set (sealing cannot be turned off once on)"
            )
        return cls(
            home=home,
            database_url=env.get("CARECAST_DATABASE_URL") or f"sqlite:///{home / 'carecast.db'}",
            temporal_address=temporal.address,
            temporal_namespace=temporal.namespace,
            task_queue=task_queue,
            broadcast_queue=env.get("CARECAST_BROADCAST_TASK_QUEUE") or None,
            temporal_port=temporal_port,
            temporal_ui_port=_int_env(env, "CARECAST_TEMPORAL_UI_PORT", temporal_port + 1000),
            api_host=env.get("CARECAST_API_HOST") or "127.0.0.1",
            api_port=_int_env(env, "CARECAST_API_PORT", 8000),
            campaigns_dir=Path(env.get("CARECAST_CAMPAIGNS_DIR", cwd / "campaigns")).resolve(),
            templates_dir=Path(env.get("CARECAST_TEMPLATES_DIR", cwd / "templates")).resolve(),
            outbox_dir=Path(env.get("CARECAST_OUTBOX_DIR", home / "outbox")).resolve(),
            temporal_api_key=temporal.api_key,
            temporal_tls=temporal.tls,
            temporal_rpc_metadata=temporal.rpc_metadata,
            temporal_payload_key=_secret_env(env, "CARECAST_TEMPORAL_PAYLOAD_KEY"),
            previous_secret_keys=_secret_list(env, "CARECAST_PREVIOUS_SECRET_KEYS"),
            previous_payload_keys=_secret_list(env, "CARECAST_TEMPORAL_PREVIOUS_PAYLOAD_KEYS"),
            codec_port=_int_env(env, "CARECAST_CODEC_PORT", 8081),
            api_key=_secret_env(env, "CARECAST_API_KEY"),
            operator_key=_secret_env(env, "CARECAST_OPERATOR_KEY"),
            secret_key=_secret_env(env, "CARECAST_SECRET_KEY"),
            public_url=env.get("CARECAST_PUBLIC_URL") or f"http://127.0.0.1:{_int_env(env, 'CARECAST_API_PORT', 8000)}",
            sendgrid_api_key=env.get("SENDGRID_API_KEY") or None,
            sendgrid_api_host=env.get("SENDGRID_API_HOST") or None,
            sendgrid_webhook_public_key=env.get("SENDGRID_WEBHOOK_PUBLIC_KEY") or None,
            twilio_account_sid=env.get("TWILIO_ACCOUNT_SID") or None,
            twilio_auth_token=env.get("TWILIO_AUTH_TOKEN") or None,
            twilio_api_base_url=env.get("TWILIO_API_BASE_URL") or None,
            twilio_messaging_service_sid=env.get("TWILIO_MESSAGING_SERVICE_SID") or None,
            twilio_from_number=env.get("TWILIO_FROM_NUMBER") or None,
            provider_timeout_seconds=_float_env(env, "CARECAST_PROVIDER_TIMEOUT", 10.0),
            alert_webhook_url=env.get("CARECAST_ALERT_WEBHOOK_URL") or None,
            metrics_host=env.get("CARECAST_METRICS_HOST") or "127.0.0.1",
            metrics_port=_metrics_ports(env)[0],
            temporal_metrics_port=_metrics_ports(env)[1],
            guardrail_check_seconds=_float_env(env, "CARECAST_GUARDRAIL_CHECK_SECONDS", 60.0),
            api_docs=env.get("CARECAST_API_DOCS") == "1",
        )
