"""Events in: stored once, routed to the journeys they belong to, enrolling contacts, through an outbox.

`record` decides in one transaction (the event, enrolments, and the outbox rows that
will start or signal journeys); `relay` tells Temporal, retrying until it answers;
`ingest` does both for one event, as the API and the CLI do.
"""
