"""What "now" is: the wall clock in a deployment, the time-skipping server's clock in `carecast simulate`.

Code that judges time (re-entry, caps, quiet hours, stage rules) takes a `Clock` rather than
reading the wall clock, so that a simulation of weeks judges them in simulated time
(carecast/simulation/clock.py).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

Clock = Callable[[], datetime]
