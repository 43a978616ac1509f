"""What every step of a journey has: an id, an optional bound on visits, and its place in the graph.

Each kind of step is a module of this package holding its model, where it can lead
(`jumps`, and whether it falls through to the next step), whether it waits (a loop
must pass a step that waits), and which events a journey at it listens to.
"""

from __future__ import annotations

from typing import Annotated, ClassVar

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from carecast.campaign.patterns import IDENTIFIER

Name = Annotated[str, Field(pattern=IDENTIFIER)]
# Where a jump leads, and where in the file it is written (for error locations).
Jump = tuple[str, tuple]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StepBase(Strict):
    id: Name
    max_visits: int | None = Field(
        default=None, description="how many times the journey may enter this step; a loop's bound"
    )
    when_spent: Name | None = Field(
        default=None, description="the step to go to once max_visits is spent; the journey ends without it"
    )

    @field_validator("max_visits")
    @classmethod
    def at_least_once(cls, value: int | None) -> int | None:
        if value is not None and value < 1:
            raise ValueError(f"max_visits is how many times the journey may enter the step: 1 or more, not {value}")
        return value

    @model_validator(mode="after")
    def spent_needs_a_bound(self) -> StepBase:
        if self.when_spent is not None and self.max_visits is None:
            raise ValueError(f"step {self.id!r} has when_spent but no max_visits: when_spent says where to go once "
                             "max_visits is spent")  # fmt: skip
        return self

    kind: ClassVar[str]
    # A step that waits (a timer or an event) may sit in a loop; one that does not would spin.
    waits: ClassVar[bool] = False

    def falls_through(self) -> bool:
        """Whether the step can go on to the next step in the file when it is done."""
        return True

    def jumps(self) -> list[Jump]:
        """The steps this one can jump to, besides the next one, with where each is written."""
        return []

    def listens_to(self) -> set[str]:
        """Events a journey must hear while it runs because of this step."""
        return set()
