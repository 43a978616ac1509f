"""Policy decisions per second on this machine.

    .venv/bin/python -m bench.policy [--decisions 100000]

Each scenario runs decide() over pre-generated inputs (random contacts in six
zones, times spread over a year) so only the decision itself is timed.
"""

from __future__ import annotations

import argparse
import random
import time as clock
from datetime import UTC, datetime, time, timedelta

from carecast.policy.decide import decide
from carecast.policy.model import CapRule, ContactView, HouseRules, Message, PreferenceView, QuietHours, SentDelivery

ZONES = ["Europe/Paris", "America/New_York", "Asia/Kolkata", "Australia/Sydney", "America/Sao_Paulo", "UTC"]
HOUSE = HouseRules(
    default_timezone="UTC",
    quiet_hours=QuietHours(time(21), time(8)),
    caps=(
        CapRule("marketing_daily", 1, timedelta(days=1)),
        CapRule("marketing_weekly", 3, timedelta(days=7)),
        CapRule("global_ceiling", 20, timedelta(days=30), categories=frozenset({"care", "marketing"})),
    ),
)


def scenario(name: str, rng: random.Random, n: int):
    start = datetime(2026, 1, 1, tzinfo=UTC)
    inputs = []
    for i in range(n):
        now = start + timedelta(minutes=rng.randrange(365 * 24 * 60))
        contact = ContactView(f"c-{i}", "a@example.com", "+33612345678", rng.choice(ZONES))
        prefs = PreferenceView(consent={"email": True, "sms": True})
        recent: list[SentDelivery] = []
        category = "marketing"
        if name == "transactional email":
            category = "transactional"
        if name == "contact send windows":
            prefs = PreferenceView(consent={"email": True}, send_windows=("* 9-17 * * 1-5",))
        if name == "caps with 20 recent deliveries":
            recent = [SentDelivery(now - timedelta(hours=rng.randrange(700)), "care", "email") for _ in range(20)]
        inputs.append(
            (Message(category, ("email", "sms"), topic="offers", on_cap="defer"), contact, prefs, recent, now)
        )
    return inputs


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--decisions", type=int, default=100_000)
    args = parser.parse_args()
    rng = random.Random(7)
    print(f"{'scenario':<34} {'decisions/s':>12}")
    for name in ["transactional email", "marketing, house quiet hours", "contact send windows",
                 "caps with 20 recent deliveries"]:  # fmt: skip
        inputs = scenario(name, rng, args.decisions)
        began = clock.perf_counter()
        for message, contact, prefs, recent, now in inputs:
            decide(message, contact, prefs, (), recent, HOUSE, now)
        elapsed = clock.perf_counter() - began
        print(f"{name:<34} {args.decisions / elapsed:>12,.0f}")


if __name__ == "__main__":
    main()
