"""What a template sees: `contact`, `event`, `campaign`, `unsubscribe_url`, `preferences_url`, `postal_address`.

`event` holds the triggering event's data fields (`{{ event.order_id }}`), the
same names the filter language uses (`event.order_id`). The same builder serves
real sends and the samples of `carecast validate` and `preview`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from carecast.render.links import LinkSigner

CONTACT_FIELDS = ("id", "email", "phone", "timezone", "locale", "lifecycle_stage", "care_agent", "attributes")


def template_context(
    contact: Mapping[str, Any],
    event: Mapping[str, Any] | None,
    campaign_id: str,
    campaign_name: str,
    topic: str | None,
    links: LinkSigner,
    postal_address: str | None = None,
) -> dict[str, Any]:
    version = contact.get("links_version") or 0
    return {
        "contact": {field: contact.get(field) for field in CONTACT_FIELDS}
        | {"attributes": contact.get("attributes") or {}},
        "event": dict(event or {}),
        "campaign": {"id": campaign_id, "name": campaign_name},
        "unsubscribe_url": links.unsubscribe_url(contact["id"], topic, version=version),
        "preferences_url": links.preferences_url(contact["id"], version=version),
        # The sender's postal address (policy.yaml email.postal_address), for marketing footers.
        "postal_address": postal_address or "",
    }
