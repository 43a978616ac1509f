"""Temporal on the wire and at rest: mTLS through Temporal's client configuration, and sealed payloads
that the history shows to no one without the key while the UI's codec endpoint reads them."""

import asyncio
import base64
import datetime
import ipaddress
import json
import ssl
import uuid
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from google.protobuf.message import Message
from temporalio.api.common.v1 import Payload
from temporalio.client import Client

from carecast.api.codec import codec_app
from carecast.channels.outbox import OutboxProvider
from carecast.config import Settings
from carecast.intake.ingest import ingest_event
from carecast.intake.record import IncomingEvent
from carecast.store.models import Event, utcnow
from carecast.temporal import connect, data_converter
from carecast.temporal_codec import EncryptionCodec
from carecast.worker import carecast_worker
from tests.factories import ROOT, add_contact, deploy

pytestmark = pytest.mark.integration

PAYLOAD_KEY = "payload-key-0123456789-0123456789"


# mTLS: a TLS front to the dev server that asks every client for a certificate signed by its CA


def _certificate(subject: str, key, issuer=None, issuer_key=None, ca=False) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder().subject_name(name).issuer_name(issuer or name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )  # fmt: skip
    if not ca:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False
        )
    return builder.sign(issuer_key or key, hashes.SHA256())


def _write(path: Path, key, certificate) -> tuple[str, str]:
    key_path, cert_path = path.with_suffix(".key"), path.with_suffix(".pem")
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))  # fmt: skip
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return str(cert_path), str(key_path)


@pytest.fixture
def pki(tmp_path):
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _certificate("carecast test CA", ca_key, ca=True)
    made = {"ca": _write(tmp_path / "ca", ca_key, ca)}
    for who in ("server", "client"):
        key = ec.generate_private_key(ec.SECP256R1())
        made[who] = _write(tmp_path / who, key, _certificate(who, key, ca.subject, ca_key))
    return made


@pytest.fixture
async def mtls_front(dev_server_env, pki):
    """127.0.0.1:<port> speaking TLS that requires a client certificate, relaying to the dev server."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=pki["ca"][0])
    context.load_cert_chain(*pki["server"])
    context.verify_mode = ssl.CERT_REQUIRED
    context.set_alpn_protocols(["h2"])
    host, port = dev_server_env.client.service_client.config.target_host.rsplit(":", 1)

    async def pipe(reader, writer):
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    async def relay(client_reader, client_writer):
        server_reader, server_writer = await asyncio.open_connection(host, int(port))
        await asyncio.gather(pipe(client_reader, server_writer), pipe(server_reader, client_writer))

    server = await asyncio.start_server(relay, "127.0.0.1", 0, ssl=context)
    yield f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
    server.close()


async def test_mtls_from_temporals_own_variables(mtls_front, pki, tmp_path):
    env = {"CARECAST_HOME": str(tmp_path / "home"), "TEMPORAL_ADDRESS": mtls_front,
           "TEMPORAL_TLS_SERVER_CA_CERT_PATH": pki["ca"][0], "TEMPORAL_TLS_CLIENT_CERT_PATH": pki["client"][0],
           "TEMPORAL_TLS_CLIENT_KEY_PATH": pki["client"][1]}  # fmt: skip
    client = await connect(Settings.from_env(env=env, cwd=tmp_path))
    assert await client.service_client.check_health()
    without_certificate = {k: v for k, v in env.items() if "CLIENT" not in k}
    with pytest.raises(RuntimeError):
        await asyncio.wait_for(connect(Settings.from_env(env=without_certificate, cwd=tmp_path)), 20)


# Sealed payloads


def payloads_in(message: Message):
    """Every Payload in a protobuf message (a history event, say), but search attributes, which the server
    indexes and so must read: they hold ids and categories, never personal data."""
    if isinstance(message, Payload):
        yield message
        return
    for descriptor, value in message.ListFields():
        if descriptor.message_type is None or descriptor.name == "search_attributes":
            continue
        if descriptor.is_repeated:
            items = value.values() if descriptor.message_type.GetOptions().map_entry else value
            for item in items:
                if isinstance(item, Message):
                    yield from payloads_in(item)
        else:
            yield from payloads_in(value)


def sdk_bookkeeping(payload: Payload) -> bool:
    """The SDK's own record of a local activity (its sequence, attempt and times): nothing of carecast's."""
    return set(json.loads(payload.data)) >= {"seq", "attempt", "activity_id", "activation_index"}


async def test_sealed_payloads_leave_the_history_unreadable_and_the_ui_reads_them(
    dev_server_env, settings, engine, sessions
):
    settings = replace(settings, task_queue=f"sealed-{uuid.uuid4().hex[:6]}", temporal_payload_key=PAYLOAD_KEY)
    sealed_client = Client(**{**dev_server_env.client.config(), "data_converter": data_converter(settings)})
    with sessions.begin() as session:
        deploy(session, settings.templates_dir, ROOT / "campaigns" / "order_confirmation.yaml")
        add_contact(session, "c-1")
        session.add(Event(event_id="seed", contact_id="c-1", name="seed", occurred_at=utcnow()))
    event = IncomingEvent(f"order-{uuid.uuid4().hex[:6]}", "c-1", "order_placed", utcnow(),
                          {"order_id": "A-1042", "total": "$9,876.54"})  # fmt: skip
    printed: list[str] = []
    provider = OutboxProvider(settings.outbox_dir, echo=printed.append)
    async with carecast_worker(sealed_client, settings, engine, provider) as worker, worker:
        [workflow_id] = (await ingest_event(sealed_client, sessions, settings.task_queue, event)).started
        await asyncio.wait_for(sealed_client.get_workflow_handle(workflow_id).result(), 60)
    assert any("Order A-1042 confirmed" in line for line in printed)

    history = await dev_server_env.client.get_workflow_handle(workflow_id).fetch_history()  # no key
    found = [p for e in history.events for p in payloads_in(e)]
    plain = [p for p in found if p.metadata["encoding"] != b"binary/encrypted" and not sdk_bookkeeping(p)]
    assert found and not plain, plain
    assert not any(b"9,876.54" in e.SerializeToString() or b"order_confirmation by" in e.SerializeToString()
                   for e in history.events)  # fmt: skip
    summaries = [e.user_metadata.summary for e in history.events if e.user_metadata.HasField("summary")]
    assert summaries

    ui = "http://127.0.0.1:8233"
    codec = httpx.AsyncClient(transport=httpx.ASGITransport(app=codec_app(EncryptionCodec(PAYLOAD_KEY), [ui])),
                              base_url="http://127.0.0.1:8081")  # fmt: skip
    body = {"payloads": [{"metadata": {k: base64.b64encode(v).decode() for k, v in s.metadata.items()},
                          "data": base64.b64encode(s.data).decode()} for s in summaries]}  # fmt: skip
    answer = await codec.post("/decode", json=body, headers={"Origin": ui, "X-Namespace": "default"})
    texts = [base64.b64decode(p["data"]).decode() for p in answer.json()["payloads"]]
    assert '"send order_confirmation by email"' in texts
