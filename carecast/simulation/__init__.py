"""`carecast simulate` and `carecast test`: weeks of a contact's life with carecast, in seconds.

The real journeys, broadcasts, policy and templates run on Temporal's time-skipping test
server, against a scratch store that is thrown away afterwards:

- scenario.py     what to simulate: the contact, the events at their offsets, how long
- scratch.py      the scratch store: campaigns (deployed or local files), house rules, the contact
- clock.py        "now" in simulated time, for activities and enrolment
- run.py          drives the server: events, scheduled broadcasts and stage recomputes at their times
- timeline.py     what happened, in the contact's local time: entries, waits, messages, exits
- expectations.py campaign tests (campaigns/tests/*.yaml): expected messages, and what must never happen
"""
