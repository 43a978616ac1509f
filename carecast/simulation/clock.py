"""Now, on Temporal's time-skipping test server."""

from __future__ import annotations

from datetime import datetime

from temporalio import activity


class SimulatedClock:
    """The simulation's now: the time-skipping server's, never the wall clock's.

    Inside an activity it is when the attempt started on the server: the server skips no time
    while an activity runs, so that is the moment the activity acts in. Elsewhere (the driver
    recording an event, starting a broadcast) it is the moment the simulation last moved to.
    """

    def __init__(self, start: datetime) -> None:
        self.moment = start

    def move_to(self, moment: datetime) -> None:
        self.moment = moment

    def __call__(self) -> datetime:
        if activity.in_activity():
            return activity.info().started_time
        return self.moment
