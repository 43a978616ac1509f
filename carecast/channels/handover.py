"""Handing many messages to a provider: in batches when it can take them, else in parallel."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from carecast.channels.base import OutboundMessage, Provider, ProviderError, ProviderReceipt

SEND_THREADS = 8
log = logging.getLogger(__name__)

Answer = ProviderReceipt | ProviderError


def _one(provider: Provider, message: OutboundMessage) -> Answer:
    try:
        return provider.send(message)
    except ProviderError as exc:
        return exc
    except Exception as exc:
        log.exception("unforeseen failure handing over delivery %s", message.delivery_id)
        return _unforeseen(exc)


def _unforeseen(exc: Exception) -> ProviderError:
    """A failure the channel did not foresee: it may have come after the request went out."""
    return ProviderError(f"the hand-over failed unforeseen: {type(exc).__name__}", kind="uncertain")


def hand_over(provider: Provider, messages: Sequence[OutboundMessage]) -> list[Answer]:
    """A receipt or an error per message, in order; never raises."""
    if not messages:
        return []
    send_many = getattr(provider, "send_many", None)
    if send_many is not None and len(messages) > 1:
        try:
            return list(send_many(messages))
        except ProviderError as exc:
            return [exc] * len(messages)
        except Exception as exc:
            log.exception("unforeseen failure handing over a batch of %d", len(messages))
            return [_unforeseen(exc)] * len(messages)
    if len(messages) == 1:
        return [_one(provider, messages[0])]
    with ThreadPoolExecutor(max_workers=min(SEND_THREADS, len(messages)), thread_name_prefix="send") as pool:
        return list(pool.map(lambda message: _one(provider, message), messages))
