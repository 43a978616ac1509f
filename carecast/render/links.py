"""Links to the preference center: `/u/<token>`.

A token names a contact, and for an unsubscribe link a topic. It also says when it
was made and which of the contact's link versions it belongs to, so the page can
tell a recent link from an old or revoked one: any genuine link unsubscribes,
forever, but only a fresh one may turn something on (`Link.may_grant`).

The token is sealed with AES-GCM under a key derived from the server's secret: it
cannot be guessed, altered or read (the contact id is not in it in the clear). Its
nonce is derived from its content (the SIV construction), so one link made twice
in the same minute is the same text. No login and no cookie (RFC 8058 one-click).

Links made before tokens carried their age (`<payload>.<signature>`, HMAC-SHA256)
still unsubscribe; they are read as made at the epoch, so they never grant.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

# A link may turn something on (consent, a topic, marketing) for this long after it was made.
GRANT_WINDOW = timedelta(days=90)
# The version of a link from before tokens carried one: never the contact's current version.
UNVERSIONED = -1
NONCE_BYTES = 12
LEGACY_SIGNATURE_BYTES = 16
_ASSOCIATED = b"carecast preference link"
_COMPACT_JSON = json.JSONEncoder(separators=(",", ":"))  # json.dumps builds an encoder per call for these


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class Link:
    """What a genuine token says."""

    contact_id: str
    topic: str | None
    issued_at: datetime
    version: int

    def may_grant(self, current_version: int, now: datetime) -> bool:
        """Whether this link may turn something on: made in the last 90 days, and not revoked since."""
        return self.version == current_version and now - self.issued_at <= GRANT_WINDOW


class LinkSigner:
    def __init__(self, secret: str, public_url: str, clock: Callable[[], float] = time.time) -> None:
        self._seal = AESGCM(hashlib.sha256(b"carecast links v2 seal\0" + secret.encode()).digest())
        self._nonce_key = hashlib.sha256(b"carecast links v2 nonce\0" + secret.encode()).digest()
        self._legacy_key = hashlib.sha256(b"carecast links\0" + secret.encode()).digest()
        self._clock = clock
        self.public_url = public_url.rstrip("/")

    def token(
        self, contact_id: str, topic: str | None = None, version: int = 0, issued_at: datetime | None = None
    ) -> str:
        """A new link for the contact's current `version`; `issued_at` only to copy another link's age."""
        minute = int(issued_at.timestamp() if issued_at else self._clock()) // 60
        content = _COMPACT_JSON.encode([contact_id, topic, version, minute]).encode()
        nonce = hmac.digest(self._nonce_key, content, "sha256")[:NONCE_BYTES]
        return _b64(nonce + self._seal.encrypt(nonce, content, _ASSOCIATED))

    def read(self, token: str) -> Link | None:
        """What a genuine token says; None for anything else."""
        if not token.isascii():  # no token we make has anything else
            return None
        if "." in token:
            return self._read_legacy(token)
        try:
            sealed = _unb64(token)
            content = self._seal.decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], _ASSOCIATED)
            contact_id, topic, version, minute = json.loads(content)
        except (binascii.Error, InvalidTag, ValueError, TypeError):
            return None
        return Link(contact_id, topic, datetime.fromtimestamp(minute * 60, UTC), version)

    def _read_legacy(self, token: str) -> Link | None:
        payload, _, signature = token.partition(".")
        expected = _b64(hmac.digest(self._legacy_key, payload.encode(), "sha256")[:LEGACY_SIGNATURE_BYTES])
        if not payload or not hmac.compare_digest(signature, expected):
            return None
        try:
            contact_id, topic = json.loads(_unb64(payload))
        except (binascii.Error, ValueError, TypeError):
            return None
        if not isinstance(contact_id, str):
            return None
        return Link(contact_id, topic, datetime.fromtimestamp(0, UTC), UNVERSIONED)

    def preferences_url(self, contact_id: str, version: int = 0) -> str:
        return f"{self.public_url}/u/{self.token(contact_id, version=version)}"

    def unsubscribe_url(self, contact_id: str, topic: str | None, version: int = 0) -> str:
        return f"{self.public_url}/u/{self.token(contact_id, topic, version)}"
