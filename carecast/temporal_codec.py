"""Payload encryption for Temporal, and the codec endpoint that lets the Temporal UI read it.

With `CARECAST_TEMPORAL_PAYLOAD_KEY` set, every payload carecast hands Temporal — workflow
inputs and results, activity arguments, signals, memos, and the summaries and details
the UI shows — is sealed with AES-256-GCM before it leaves the process, so a Temporal
cluster (or Temporal Cloud) keeps only ciphertext. Each sealed payload names its key by
an id (a digest of the key, never the key), so a process with another key says so
instead of failing obscurely. Payloads written before the key was set stay readable.

The Temporal UI decodes through a codec server (the HTTP protocol of Temporal's samples:
`POST /decode` and `/encode` with a JSON `Payloads`). `carecast codec-server` runs one on
127.0.0.1 for the operator's own browser, open (CORS) only to the Temporal UI's origin;
it is a decryption service, so it is never part of the public API.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from google.protobuf import json_format
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.converter import PayloadCodec

ENCRYPTED = b"binary/encrypted"
KEY_ID = "encryption-key-id"
NONCE_BYTES = 12


class PayloadKeyError(ValueError):
    pass


class _Key:
    def __init__(self, secret: str) -> None:
        key = hashlib.sha256(b"carecast temporal payloads\0" + secret.encode()).digest()
        self.aead = AESGCM(key)
        self.id = hashlib.sha256(b"key id\0" + key).hexdigest()[:16].encode()


class EncryptionCodec(PayloadCodec):
    """Seals with `secret`; opens what it or one of the `previous` secrets sealed (chosen by key id)."""

    def __init__(self, secret: str, previous: Sequence[str] = ()) -> None:
        keys = [_Key(s) for s in (secret, *previous)]
        self._current = keys[0]
        self._by_id = {k.id: k for k in reversed(keys)}
        self.key_id = self._current.id

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.seal(p) for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.open(p) for p in payloads]

    def seal(self, payload: Payload) -> Payload:
        nonce = os.urandom(NONCE_BYTES)
        sealed = nonce + self._current.aead.encrypt(nonce, payload.SerializeToString(), self.key_id)
        return Payload(metadata={"encoding": ENCRYPTED, KEY_ID: self.key_id}, data=sealed)

    def open(self, payload: Payload) -> Payload:
        if payload.metadata.get("encoding") != ENCRYPTED:
            return payload  # written before payloads were encrypted
        key_id = payload.metadata.get(KEY_ID, b"")
        key = self._by_id.get(key_id)
        if key is None:
            raise PayloadKeyError(
                f"a payload sealed with key {key_id.decode(errors='replace')!r}, but this process has "
                f"{', '.join(repr(k.decode()) for k in self._by_id)}: give every worker, API and command the same "
                "CARECAST_TEMPORAL_PAYLOAD_KEY (and the one before a change in CARECAST_TEMPORAL_PREVIOUS_PAYLOAD_KEYS)"
            )
        try:
            opened = key.aead.decrypt(payload.data[:NONCE_BYTES], payload.data[NONCE_BYTES:], key_id)
        except InvalidTag:
            raise PayloadKeyError("a sealed payload was altered: it does not open with its key") from None
        return Payload.FromString(opened)


def transcode(codec: EncryptionCodec, body: bytes, direction: str) -> str:
    """The codec server's work: a JSON `Payloads` in, the same encoded or decoded out."""
    payloads = json_format.Parse(body, Payloads())
    convert = codec.seal if direction == "encode" else codec.open
    converted = Payloads(payloads=[convert(p) for p in payloads.payloads])
    return json_format.MessageToJson(converted)
