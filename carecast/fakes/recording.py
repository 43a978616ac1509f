"""What the fake providers share: the log of requests, injected failures, pending callbacks."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Received:
    """One request a fake provider received, with every way it broke the official description."""

    provider: str
    path: str
    headers: dict[str, str]
    body: Any  # the JSON document (SendGrid) or the form fields (Twilio)
    errors: list[str]
    status: int = 0
    answered_after: float = 0.0  # seconds an injected failure held the answer back
    at: float = field(default_factory=time.monotonic)  # when it arrived (benchmarks time messages by it)


@dataclass
class InjectedFailure:
    status: int
    retry_after: float | None = None
    code: int | None = None
    delay: float = 0.0  # seconds to wait before answering (a slow provider)


@dataclass
class Callback:
    """A signed POST the fake owes carecast: a status callback, an event batch, an inbound SMS."""

    url: str
    headers: dict[str, str]
    content: bytes
    form: dict[str, str] | None = None


@dataclass
class Journal:
    """`keep`: how many received requests to remember (None: all); `owes_callbacks`: False drops them;
    `chaos`: asked for a failure (or None) for each valid request that no queued failure answers."""

    keep: int | None = None
    owes_callbacks: bool = True
    received: deque[Received] = field(init=False)
    failures: dict[str, deque[InjectedFailure]] = field(default_factory=dict)
    callbacks: deque[Callback] = field(default_factory=deque)
    lock: threading.Lock = field(default_factory=threading.Lock)
    chaos: Callable[[str], InjectedFailure | None] | None = None

    def __post_init__(self) -> None:
        self.received = deque(maxlen=self.keep)

    def record(self, item: Received) -> Received:
        with self.lock:
            self.received.append(item)
        return item

    def next_failure(self, provider: str) -> InjectedFailure | None:
        with self.lock:
            queue = self.failures.get(provider)
            if queue:
                return queue.popleft()
        return self.chaos(provider) if self.chaos is not None else None

    def fail_next(self, provider: str, failure: InjectedFailure, times: int = 1) -> None:
        with self.lock:
            self.failures.setdefault(provider, deque()).extend([failure] * times)

    def owe(self, callback: Callback) -> None:
        if not self.owes_callbacks:
            return
        with self.lock:
            self.callbacks.append(callback)

    def take_callbacks(self) -> list[Callback]:
        with self.lock:
            taken = list(self.callbacks)
            self.callbacks.clear()
        return taken
