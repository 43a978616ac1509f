"""The templates and email identity a message renders with: its version's bundle, loaded once per worker.

A version deployed before bundles (and a journey started before them, which names
no bundle) renders from the worker's templates folder with the house identity.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from carecast.campaign.bundle import identity_from
from carecast.policy.model import EmailIdentity
from carecast.render.templates import TemplateRenderer
from carecast.store.models import CampaignVersion

KEPT_BUNDLES = 64


class BundleTemplates:
    def __init__(
        self, sessions: sessionmaker[Session], folder: TemplateRenderer, house: Callable[[], EmailIdentity]
    ) -> None:
        self.sessions = sessions
        self.folder = folder
        self.house = house  # the house identity now, for versions deployed before bundles
        self._loaded: OrderedDict[tuple[str, str], tuple[TemplateRenderer, EmailIdentity]] = OrderedDict()
        self._lock = threading.Lock()  # activities run in a thread pool

    def of(self, campaign_id: str, bundle: str | None) -> tuple[TemplateRenderer, EmailIdentity]:
        """(renderer, identity) of a campaign's bundle, by its content hash."""
        if bundle is None:
            return self.folder, self.house()
        key = (campaign_id, bundle)
        with self._lock:
            if key in self._loaded:
                self._loaded.move_to_end(key)
                return self._loaded[key]
        loaded = self._load(campaign_id, bundle)
        with self._lock:
            self._loaded[key] = loaded
            while len(self._loaded) > KEPT_BUNDLES:
                self._loaded.popitem(last=False)
        return loaded

    def _load(self, campaign_id: str, bundle: str) -> tuple[TemplateRenderer, EmailIdentity]:
        with self.sessions() as session:
            row = session.execute(
                select(CampaignVersion.templates, CampaignVersion.identity).where(
                    CampaignVersion.campaign_id == campaign_id, CampaignVersion.content_hash == bundle
                )
            ).first()
        if row is None or row.templates is None:
            return self.folder, self.house()  # deployed before bundles
        renderer = TemplateRenderer(Path(f"{campaign_id} bundle {bundle[:12]}"), files=row.templates)
        return renderer, identity_from(row.identity) or self.house()
