"""Links to the preference center: `/u/<token>`.

A token names a contact, and for an unsubscribe link a topic. It also says when it
was made and which of the contact's link versions it belongs to, so the page can
tell a recent link from an old or revoked one: any genuine link unsubscribes,
forever, but only a fresh one may turn something on (`Link.may_grant`).

The token is sealed with AES-SIV (RFC 5297) under a key derived from the server's
secret: it cannot be guessed, altered or read (the contact id is not in it in the
clear), and being deterministic, one link made twice in the same minute is the same
text. No login and no cookie (RFC 8058 one-click).

Links made before tokens carried their age (`<payload>.<signature>`, HMAC-SHA256)
still unsubscribe; they are read as made at the epoch, so they never grant, and as of
the first link version, so until the contact's links are revoked they may ask for a
fresh one.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESSIV

# A link may turn something on (consent, a topic, marketing) for this long after it was made.
GRANT_WINDOW = timedelta(days=90)
FIRST_VERSION = 0  # a contact's links before any revocation (or change of address)
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

    def may_grant(self, current_version: int, contact_since: datetime, now: datetime) -> bool:
        """Whether this link may turn something on: made in the last 90 days, not revoked since, and for this
        contact (not for one of the same id that was forgotten before this one was created)."""
        return (
            self.version == current_version
            and now - self.issued_at <= GRANT_WINDOW
            and self.issued_at >= contact_since.replace(second=0, microsecond=0)
        )


class _Keys:
    """What one secret seals and signs links with."""

    def __init__(self, secret: str) -> None:
        self.seal = AESSIV(hashlib.sha512(b"carecast links v2\0" + secret.encode()).digest())
        self.legacy = hashlib.sha256(b"carecast links\0" + secret.encode()).digest()


class LinkSigner:
    """Makes links under `secret`; reads them under it and under `previous` secrets, so a changed secret
    (CARECAST_PREVIOUS_SECRET_KEYS) leaves every link already sent working."""

    def __init__(
        self, secret: str, public_url: str, previous: Sequence[str] = (), clock: Callable[[], float] = time.time
    ) -> None:
        self._keys = [_Keys(s) for s in (secret, *previous)]
        self._clock = clock
        self.public_url = public_url.rstrip("/")

    def token(
        self, contact_id: str, topic: str | None = None, *, version: int, issued_at: datetime | None = None
    ) -> str:
        """A new link for the contact's current link `version`; `issued_at` only to copy another link's age."""
        minute = int(issued_at.timestamp() if issued_at else self._clock()) // 60
        content = _COMPACT_JSON.encode([contact_id, topic, version, minute]).encode()
        return _b64(self._keys[0].seal.encrypt(content, [_ASSOCIATED]))

    def read(self, token: str) -> Link | None:
        """What a genuine token says; None for anything else."""
        if not token.isascii():  # no token we make has anything else
            return None
        if "." in token:
            return self._read_legacy(token)
        try:
            sealed = _unb64(token)
        except (binascii.Error, ValueError):
            return None
        for keys in self._keys:
            try:
                contact_id, topic, version, minute = json.loads(keys.seal.decrypt(sealed, [_ASSOCIATED]))
            except (InvalidTag, ValueError, TypeError):
                continue
            return Link(contact_id, topic, datetime.fromtimestamp(minute * 60, UTC), version)
        return None

    def _read_legacy(self, token: str) -> Link | None:
        payload, _, signature = token.partition(".")
        signatures = (hmac.digest(k.legacy, payload.encode(), "sha256")[:LEGACY_SIGNATURE_BYTES] for k in self._keys)
        if not payload or not any(hmac.compare_digest(signature, _b64(expected)) for expected in signatures):
            return None
        try:
            contact_id, topic = json.loads(_unb64(payload))
        except (binascii.Error, ValueError, TypeError):
            return None
        if not isinstance(contact_id, str):
            return None
        return Link(contact_id, topic, datetime.fromtimestamp(0, UTC), FIRST_VERSION)

    def preferences_url(self, contact_id: str, *, version: int) -> str:
        return f"{self.public_url}/u/{self.token(contact_id, version=version)}"

    def unsubscribe_url(self, contact_id: str, topic: str | None, *, version: int) -> str:
        return f"{self.public_url}/u/{self.token(contact_id, topic, version=version)}"
