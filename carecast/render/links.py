"""Signed links to the preference center: `/u/<token>`.

A token names a contact (and, for an unsubscribe link, a topic) and carries an
HMAC-SHA256 signature under the server's secret, so it can be neither guessed
nor altered. It needs no login and no cookie (RFC 8058 one-click unsubscribe).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

SIGNATURE_BYTES = 16
_COMPACT_JSON = json.JSONEncoder(separators=(",", ":"))  # json.dumps builds an encoder per call for these


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class LinkSigner:
    def __init__(self, secret: str, public_url: str) -> None:
        self._key = hashlib.sha256(b"carecast links\0" + secret.encode()).digest()
        self.public_url = public_url.rstrip("/")

    def _sign(self, payload: str) -> str:
        return _b64(hmac.digest(self._key, payload.encode(), "sha256")[:SIGNATURE_BYTES])

    def token(self, contact_id: str, topic: str | None = None) -> str:
        payload = _b64(_COMPACT_JSON.encode([contact_id, topic]).encode())
        return f"{payload}.{self._sign(payload)}"

    def read(self, token: str) -> tuple[str, str | None] | None:
        """(contact id, topic) of a genuine token; None for anything else."""
        if not token.isascii():  # no token we make has anything else, and hmac compares only ASCII text
            return None
        payload, _, signature = token.partition(".")
        if not payload or not hmac.compare_digest(signature, self._sign(payload)):
            return None
        try:
            contact_id, topic = json.loads(_unb64(payload))
        except (ValueError, TypeError):
            return None
        return (contact_id, topic) if isinstance(contact_id, str) else None

    def preferences_url(self, contact_id: str) -> str:
        return f"{self.public_url}/u/{self.token(contact_id)}"

    def unsubscribe_url(self, contact_id: str, topic: str | None) -> str:
        return f"{self.public_url}/u/{self.token(contact_id, topic)}"
