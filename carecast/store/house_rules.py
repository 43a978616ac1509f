"""The house rules as deployed: `carecast deploy` stores policy.yaml, every worker applies the newest.

Limits are never frozen into a journey: a tightened quiet-hours rule, cap or send rate
reaches every running journey within seconds of the deploy, on every machine. Before the
first deploy stores them, a worker applies the policy.yaml of its own folder.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from carecast.campaign.documents import load_model
from carecast.campaign.house_rules import POLICY_FILE, HouseRulesSpec
from carecast.policy.model import HouseRules
from carecast.store.models import HouseRulesVersion

READ_EVERY_SECONDS = 2.0

log = logging.getLogger("carecast.house_rules")


def newest_house_spec(session: Session) -> HouseRulesSpec | None:
    """The house rules last deployed, as written (None before any deploy)."""
    document = session.scalar(select(HouseRulesVersion.document).order_by(HouseRulesVersion.id.desc()).limit(1))
    return HouseRulesSpec.model_validate(document) if document is not None else None


def deploy_house_rules(session: Session, campaigns_dir: Path) -> bool:
    """Stores the folder's policy.yaml when it differs from the newest stored; True when it did."""
    path = campaigns_dir / POLICY_FILE
    spec = load_model(path, HouseRulesSpec) if path.exists() else HouseRulesSpec()
    document = spec.model_dump(mode="json", by_alias=True)
    content_hash = hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()
    newest = session.scalar(select(HouseRulesVersion.content_hash).order_by(HouseRulesVersion.id.desc()).limit(1))
    if newest == content_hash:
        return False
    session.add(HouseRulesVersion(content_hash=content_hash, document=document))
    session.flush()
    return True


class DeployedHouseRules:
    """The newest stored house rules, read at most every few seconds; `fallback` until any are stored.

    Safe to call anywhere, inside a transaction too: it reads on a pooled connection of its own
    without opening a transaction (on SQLite every carecast transaction takes the write lock, so a
    read inside one would wait on itself). When the store does not answer, the rules last read stay.
    """

    def __init__(self, sessions: sessionmaker[Session], fallback: HouseRules, seconds: float = READ_EVERY_SECONDS):
        self.engine = sessions.engine
        self.fallback = fallback
        self.seconds = seconds
        self._lock = threading.Lock()
        self._read_at = float("-inf")
        self._hash: str | None = None
        self._rules = fallback

    def __call__(self) -> HouseRules:
        with self._lock:
            if time.monotonic() - self._read_at < self.seconds:
                return self._rules
            self._read_at = time.monotonic()
            try:
                newest = self._newest()
            except Exception as exc:  # the store is away: go on with what was read last
                log.warning("house rules not read (%s); applying the ones read before", exc)
                return self._rules
            if newest is not None and newest[0] != self._hash:
                document = json.loads(newest[1]) if isinstance(newest[1], str) else newest[1]
                self._rules = HouseRulesSpec.model_validate(document).to_policy()
                self._hash = newest[0]
            return self._rules

    def _newest(self) -> tuple[str, object] | None:
        connection = self.engine.raw_connection()  # DBAPI level: no BEGIN IMMEDIATE on SQLite
        try:
            cursor = connection.cursor()
            cursor.execute("SELECT content_hash, document FROM house_rules ORDER BY id DESC LIMIT 1")
            return cursor.fetchone()
        finally:
            connection.close()
