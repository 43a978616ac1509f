"""Sealed Temporal payloads, and the codec endpoint the Temporal UI reads them through."""

import base64
import json

import httpx
import pytest
from temporalio.api.common.v1 import Payload
from temporalio.api.failure.v1 import Failure
from temporalio.exceptions import ApplicationError

from carecast.api.codec import codec_app
from carecast.config import Settings
from carecast.temporal import data_converter
from carecast.temporal_codec import EncryptionCodec, PayloadKeyError

KEY = "p" * 32
UI = "http://127.0.0.1:8233"
PLAIN = Payload(metadata={"encoding": b"json/plain"}, data=b'{"contact_id":"c-1042","order_id":"A-77"}')


async def test_a_sealed_payload_shows_nothing_and_opens_with_its_key_only():
    codec = EncryptionCodec(KEY)
    [sealed] = await codec.encode([PLAIN])
    assert b"c-1042" not in sealed.SerializeToString() and sealed.metadata["encoding"] == b"binary/encrypted"
    assert await codec.decode([sealed]) == [PLAIN]
    with pytest.raises(PayloadKeyError, match="give every worker, API and command the same"):
        await EncryptionCodec("q" * 32).decode([sealed])
    altered = Payload(metadata=sealed.metadata, data=sealed.data[:-1] + bytes([sealed.data[-1] ^ 1]))
    with pytest.raises(PayloadKeyError, match="altered"):
        await codec.decode([altered])


async def test_a_payload_written_before_the_key_was_set_still_reads():
    assert await EncryptionCodec(KEY).decode([PLAIN]) == [PLAIN]


def as_json(*payloads: Payload) -> dict:
    return {"payloads": [{"metadata": {k: base64.b64encode(v).decode() for k, v in p.metadata.items()},
                          "data": base64.b64encode(p.data).decode()} for p in payloads]}  # fmt: skip


@pytest.fixture
def codec_server():
    app = codec_app(EncryptionCodec(KEY), [UI])
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1:8081")


async def test_the_ui_decodes_through_the_codec_endpoint(codec_server):
    sealed = EncryptionCodec(KEY).seal(PLAIN)
    for path in ("/decode", "/default/decode"):
        answer = await codec_server.post(path, json=as_json(sealed), headers={"Origin": UI, "X-Namespace": "default"})
        assert answer.status_code == 200 and answer.headers["access-control-allow-origin"] == UI
        [decoded] = answer.json()["payloads"]
        assert base64.b64decode(decoded["data"]) == PLAIN.data
    encoded = await codec_server.post("/encode", json=as_json(PLAIN))
    [back] = encoded.json()["payloads"]
    assert base64.b64decode(back["metadata"]["encoding"]) == b"binary/encrypted"


async def test_only_the_ui_origin_may_call_it_from_a_browser(codec_server):
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type,x-namespace"}
    allowed = await codec_server.options("/decode", headers={"Origin": UI, **preflight})
    refused = await codec_server.options("/decode", headers={"Origin": "https://evil.example", **preflight})
    assert allowed.status_code == 200 and refused.status_code == 400
    assert "access-control-allow-origin" not in refused.headers


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("/decode", b"not json", 400),
        ("/decode", json.dumps(as_json(EncryptionCodec("q" * 32).seal(PLAIN))).encode(), 422),
        ("/rewrite", b"{}", 404),
    ],
)
async def test_what_the_codec_cannot_do_is_said_plainly(codec_server, path, body, status):
    answer = await codec_server.post(path, content=body, headers={"Content-Type": "application/json"})
    assert answer.status_code == status


async def test_after_a_key_change_payloads_sealed_with_the_previous_key_still_open():
    before = EncryptionCodec("o" * 32)
    [old] = await before.encode([PLAIN])
    after = EncryptionCodec("n" * 32, previous=["o" * 32])
    [new] = await after.encode([PLAIN])
    assert await after.decode([old, new]) == [PLAIN, PLAIN]
    assert new.metadata["encryption-key-id"] == after.key_id != before.key_id


async def test_failure_messages_are_sealed_too():
    """A provider's error text travels in an activity's failure: it is sealed like any payload."""
    settings = Settings.from_env(env={"CARECAST_HOME": "/nonexistent", "CARECAST_TEMPORAL_PAYLOAD_KEY": KEY})
    converter = data_converter(settings)
    failure = Failure()
    await converter.encode_failure(ApplicationError("550 no such user <ada@example.com>"), failure)
    assert "ada@example.com" not in str(failure) and failure.message == "Encoded failure"
    assert "ada@example.com" in str(await converter.decode_failure(failure))


async def test_a_page_reaching_it_by_another_name_is_refused(codec_server):
    """DNS rebinding: a name that resolves to 127.0.0.1 still is not a local host."""
    answer = await codec_server.post("/decode", json={"payloads": []}, headers={"Host": "evil.example:8081"})
    assert answer.status_code == 400
