"""The one decision every message passes: Send, Defer or Skip, with a reason.

The semantics (../shared/DESIGN.md, "The policy"):

| rule                         | transactional                       | care            | marketing            |
|------------------------------|-------------------------------------|-----------------|----------------------|
| channel consent, suppression | obeyed                              | obeyed          | obeyed               |
| topic subscription           | —                                   | obeyed          | obeyed               |
| paused-until                 | —                                   | deferred        | skipped              |
| quiet hours, send windows    | email never; sms/voice unless urgent| deferred        | deferred             |
| frequency caps               | not counted                         | counted, never capped | capped: skip or defer |

A deferred message that could not go out before its hold deadline is skipped as `expired`.
Before all of it, an operator's hold on the campaign: paused defers (and the journey is
woken when it is resumed), stopped skips.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime, timedelta

from carecast.policy.channels import Reachability, choose_channel
from carecast.policy.decision import Decision, Defer, Send, Skip
from carecast.policy.frequency import exceeded_cap
from carecast.policy.local_time import earliest_allowed
from carecast.policy.model import ContactView, HouseRules, Message, PreferenceView, SentDelivery
from carecast.policy.timezones import contact_zone

# A message of a paused campaign asks again after this long, in case the resume was not heard.
PAUSED_RECHECK = timedelta(minutes=15)


def decide(
    message: Message,
    contact: ContactView,
    preferences: PreferenceView,
    suppressions: Collection[tuple[str, str]],
    recent_deliveries: Sequence[SentDelivery],
    house_rules: HouseRules,
    now: datetime,
) -> Decision:
    deadline = message.hold_deadline
    if deadline is not None and now >= deadline:
        return Skip("expired")
    if message.campaign_hold == "stopped":
        return Skip("campaign_stopped")
    if message.campaign_hold == "paused":
        return Defer(min(now + PAUSED_RECHECK, deadline or now + PAUSED_RECHECK), "campaign_paused")

    lifecycle = message.category != "transactional"
    if message.category == "marketing" and not preferences.marketing:
        return Skip("marketing_unsubscribed")
    if lifecycle and message.topic and preferences.topics.get(message.topic) is False:
        return Skip("topic_unsubscribed")

    reach = Reachability(
        addresses={"email": contact.email, "sms": contact.phone, "voice": contact.phone},
        consent=preferences.consent,
        preferred=preferences.preferred_channels,
    )
    choice = choose_channel(message.channels, reach, suppressions)
    if isinstance(choice, Skip):
        return choice

    if lifecycle and preferences.paused_until is not None and now < preferences.paused_until:
        if message.category == "marketing":
            return Skip("paused")
        return _within_hold(Defer(preferences.paused_until, "paused"), deadline)

    if message.category == "marketing":
        rules = house_rules.caps + ((preferences.frequency_limit,) if preferences.frequency_limit else ())
        capped = exceeded_cap(rules, choice.channel, recent_deliveries, now)
        if capped is not None:
            rule, frees_at = capped
            reason = f"frequency_cap:{rule.name}"
            if message.on_cap == "skip" or frees_at is None:
                return Skip(reason)
            return _within_hold(Defer(frees_at, reason), deadline)

    return _timed(message, choice, contact, preferences, house_rules, now, deadline)


def _timed(
    message: Message,
    choice: Send,
    contact: ContactView,
    preferences: PreferenceView,
    house_rules: HouseRules,
    now: datetime,
    deadline: datetime | None,
) -> Decision:
    """Send now, or Defer to the first minute quiet hours and send windows allow."""
    if message.category == "transactional" and (choice.channel == "email" or message.urgent):
        return choice
    own = (preferences.quiet_hours,) if preferences.quiet_hours else ()
    quiet = house_rules.quiet_hours_for(contact.region) + own
    windows = preferences.send_windows if message.category != "transactional" else ()
    if not quiet and not windows:
        return choice
    tz = contact_zone(contact.timezone, contact.phone, house_rules.default_timezone)
    allowed_at, reason = earliest_allowed(now, tz, quiet, windows)
    if reason is None:
        return choice
    if allowed_at is None:
        return Skip(reason)  # the contact's rules leave no time at all: waiting would not help
    return _within_hold(Defer(allowed_at, reason), deadline)


def _within_hold(defer: Defer, deadline: datetime | None) -> Decision:
    if deadline is not None and defer.until > deadline:
        return Skip("expired")
    return defer
