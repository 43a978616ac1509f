"""Which provider carries each channel, chosen once from the settings.

No credentials at all: the local outbox carries everything (and `carecast dev`
says so). With credentials, SendGrid carries email and Twilio SMS and calls; a
channel whose provider is not configured refuses to send and names the setting,
rather than quietly writing to a folder in production.
"""

from __future__ import annotations

from carecast.channels.base import Provider
from carecast.channels.outbox import OutboxProvider
from carecast.channels.router import ChannelRouter, Unconfigured
from carecast.channels.sendgrid_email import SendGridEmail
from carecast.channels.twilio_channels import TwilioSms, TwilioVoice, twilio_client
from carecast.config import ConfigError, Settings
from carecast.metrics import TimedProvider


def build_provider(settings: Settings) -> Provider:
    """The providers the settings configure, each request timed for the metrics (carecast/metrics.py)."""
    if settings.uses_outbox:
        return TimedProvider(OutboxProvider(settings.outbox_dir))
    providers: dict[str, Provider] = {
        "email": Unconfigured("email", "SENDGRID_API_KEY"),
        "sms": Unconfigured("sms", "TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN"),
        "voice": Unconfigured("voice", "TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and TWILIO_FROM_NUMBER"),
    }
    timeout = settings.provider_timeout_seconds
    if settings.sendgrid_api_key:
        providers["email"] = SendGridEmail(settings.sendgrid_api_key, settings.sendgrid_api_host, timeout)
    if settings.uses_twilio:
        if not (settings.twilio_messaging_service_sid or settings.twilio_from_number):
            raise ConfigError("Twilio SMS needs a sender: set TWILIO_MESSAGING_SERVICE_SID or TWILIO_FROM_NUMBER")
        client = twilio_client(
            settings.twilio_account_sid, settings.twilio_auth_token, settings.twilio_api_base_url, timeout
        )
        providers["sms"] = TwilioSms(
            client,
            settings.public_url,
            messaging_service_sid=settings.twilio_messaging_service_sid,
            from_number=settings.twilio_from_number,
        )
        if settings.twilio_from_number:
            providers["voice"] = TwilioVoice(client, settings.public_url, from_number=settings.twilio_from_number)
    return ChannelRouter({c: p if isinstance(p, Unconfigured) else TimedProvider(p) for c, p in providers.items()})


def describe_providers(settings: Settings) -> str:
    """One line for the operator: where messages of each channel go."""
    if settings.uses_outbox:
        return f"outbox     no provider credentials set: messages are written to {settings.outbox_dir}"
    email = f"SendGrid ({settings.sendgrid_api_host or 'api.sendgrid.com'})" if settings.sendgrid_api_key else "none"
    twilio = f"Twilio ({settings.twilio_api_base_url or 'api.twilio.com'})" if settings.uses_twilio else "none"
    voice = twilio if settings.uses_twilio and settings.twilio_from_number else "none"
    return f"providers  email: {email}; sms: {twilio}; voice: {voice}; callbacks to {settings.public_url}"
