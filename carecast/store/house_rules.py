"""The house rules as deployed: `carecast deploy` stores policy.yaml, every worker applies the newest.

Limits are never frozen into a journey: a tightened quiet-hours rule, cap or send rate
reaches every running journey within seconds of the deploy, on every machine. Before the
first deploy stores them, a worker applies the policy.yaml of its own folder.
"""

from __future__ import annotations

import hashlib
import json
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
    """The newest stored house rules, read at most every few seconds; `fallback` until any are stored."""

    def __init__(self, sessions: sessionmaker[Session], fallback: HouseRules, seconds: float = READ_EVERY_SECONDS):
        self.sessions = sessions
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
            with self.sessions() as session:
                newest = session.execute(
                    select(HouseRulesVersion.content_hash, HouseRulesVersion.document)
                    .order_by(HouseRulesVersion.id.desc())
                    .limit(1)
                ).first()
            if newest is not None and newest.content_hash != self._hash:
                self._rules = HouseRulesSpec.model_validate(newest.document).to_policy()
                self._hash = newest.content_hash
            self._read_at = time.monotonic()
            return self._rules
