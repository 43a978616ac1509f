"""The HTTP API: events in, provider webhooks, preference center, health."""
