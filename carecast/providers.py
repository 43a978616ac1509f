"""Which provider carries messages, chosen once from the settings."""

from __future__ import annotations

from carecast.channels.base import Provider
from carecast.channels.outbox import OutboxProvider
from carecast.config import ConfigError, Settings


def build_provider(settings: Settings) -> Provider:
    """The local outbox when no credentials are set; callers tell the operator so."""
    if settings.uses_outbox:
        return OutboxProvider(settings.outbox_dir)
    raise ConfigError(
        "SendGrid/Twilio credentials are set, but this build only has the local outbox provider; "
        "unset SENDGRID_API_KEY, TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN to use it"
    )
