"""Connecting to Temporal: the embedded dev server, a cluster, or Temporal Cloud."""

from __future__ import annotations

from temporalio.client import Client

from carecast.config import Settings


async def connect(settings: Settings) -> Client:
    """A client for the configured address and namespace; an API key (Temporal Cloud) turns on TLS."""
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        api_key=settings.temporal_api_key,
        tls=settings.temporal_api_key is not None,
    )
