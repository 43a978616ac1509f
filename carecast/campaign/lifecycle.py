"""`campaigns/lifecycle.yaml`: the ordered lifecycle stages and the rule for each.

A contact is in the first stage whose rule matches; a stage without a rule
matches everyone, so only the last one may leave it out.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from carecast.campaign.documents import load_model
from carecast.campaign.durations import Duration
from carecast.campaign.model import Audience, Name

LIFECYCLE_FILE = "lifecycle.yaml"


class Stage(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Name
    when: Audience | None = Field(default=None, description="who is in this stage; everyone when left out")


class Lifecycle(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    stages: list[Stage] = Field(min_length=1)
    recompute_every: Duration = Field(default=timedelta(hours=1), description="how often stages are recomputed")

    @model_validator(mode="after")
    def well_ordered(self) -> Lifecycle:
        names = [stage.name for stage in self.stages]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise ValueError(f"stage {duplicated[0]!r} is named twice")
        for stage in self.stages[:-1]:
            if stage.when is None:
                raise ValueError(f"stage {stage.name!r} has no rule, so the stages after it could never match")
        return self

    @property
    def names(self) -> list[str]:
        return [stage.name for stage in self.stages]


def load_lifecycle(campaigns_dir: Path) -> Lifecycle | None:
    path = campaigns_dir / LIFECYCLE_FILE
    return load_model(path, Lifecycle) if path.exists() else None
