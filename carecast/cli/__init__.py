"""`carecast ...`: the command line for operators and marketers, a module per group of commands.

Importing a module registers its commands; `carecast --help` lists them in this order.
"""

from carecast.cli import run  # noqa: F401

# isort: split
from carecast.cli import (  # noqa: F401
    broadcasts,
    campaigns,
    contacts,
    deliveries,
    events,
    report,
    simulate,
    store,
    temporal,
)
from carecast.cli.common import app, main

__all__ = ["app", "main"]
