"""Recorded histories of every workflow kind replay against today's workflow code.

A change that alters the order of workflow commands fails here; it must go
through `workflow.patched`. Record new histories with

    CARECAST_RECORD_HISTORIES=1 .venv/bin/pytest \
        tests/test_journey_steps.py tests/test_broadcast.py tests/test_lifecycle.py
"""

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from carecast.temporal import DATA_CONVERTER
from workflows.broadcast import BroadcastWorkflow
from workflows.journey.workflow import JourneyWorkflow
from workflows.legacy.journey_v1 import JourneyWorkflowV1
from workflows.lifecycle import LifecycleWorkflow

HISTORIES = sorted((Path(__file__).resolve().parent / "histories").glob("*.json"))


def test_there_are_histories_of_every_workflow_kind():
    kinds = {path.name.split("_")[0] for path in HISTORIES}
    assert {"JourneyWorkflow", "BroadcastWorkflow", "LifecycleWorkflow"} <= kinds


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_history_replays_without_nondeterminism(path):
    history = WorkflowHistory.from_json(path.stem, path.read_text())
    workflows = [JourneyWorkflow, JourneyWorkflowV1, BroadcastWorkflow, LifecycleWorkflow]
    await Replayer(workflows=workflows, data_converter=DATA_CONVERTER).replay_workflow(history)
