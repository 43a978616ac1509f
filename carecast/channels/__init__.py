"""Providers that carry a rendered message to a person: the local outbox, SendGrid, Twilio."""
