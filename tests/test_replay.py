"""Recorded histories of every workflow kind replay against today's workflow code.

A change that alters the order of workflow commands fails here; it must go
through `workflow.patched`, or a new workflow type with the old one kept until its
runs finish (the first journey type, JourneyWorkflow, is kept so in
workflows/legacy/). Record new histories with

    CARECAST_RECORD_HISTORIES=1 .venv/bin/pytest tests/test_journey_steps.py tests/test_broadcast.py \
        tests/test_journey_routing.py tests/test_deliveries_resend.py

(histories of a branch no run takes any more, such as BroadcastWorkflow_before_parallel_pages_*,
are kept as they are).
"""

import ast
import base64
import importlib
import json
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer
from temporalio.workflow import _Definition

from carecast.temporal import DATA_CONVERTER
from workflows.broadcast import PARALLEL_PAGES, BroadcastWorkflow
from workflows.journey.workflow import JourneyWorkflow
from workflows.legacy.journey_v1 import JourneyWorkflowV1
from workflows.lifecycle import LifecycleWorkflow
from workflows.resend import ResendWorkflow

HISTORIES = sorted((Path(__file__).resolve().parent / "histories").glob("*.json"))
WORKFLOWS = Path(__file__).resolve().parent.parent / "workflows"


def test_there_are_histories_of_every_workflow_kind():
    kinds = {path.name.split("_")[0] for path in HISTORIES}
    assert {"Journey", "JourneyWorkflow", "BroadcastWorkflow", "LifecycleWorkflow", "Resend"} <= kinds


def patches_in_code() -> dict[str, set[str]]:
    """Each patch id a workflow module asks `workflow.patched` about, with the workflow types of that module."""
    found: dict[str, set[str]] = {}
    for source in sorted(WORKFLOWS.rglob("*.py")):
        calls = [
            node.args[0]
            for node in ast.walk(ast.parse(source.read_text()))
            if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "patched" and node.args
        ]
        if not calls:
            continue
        module = importlib.import_module(".".join(source.relative_to(WORKFLOWS.parent).with_suffix("").parts))
        types = {
            definition.name
            for value in vars(module).values()
            if isinstance(value, type) and (definition := _Definition.from_class(value)) is not None
        }
        for call in calls:
            patch_id = ast.literal_eval(call) if isinstance(call, ast.Constant) else getattr(module, call.id)
            found.setdefault(patch_id, set()).update(types)
    return found


def test_the_patch_finder_sees_the_broadcasts_patch():
    assert patches_in_code()[PARALLEL_PAGES] == {"BroadcastWorkflow"}


@pytest.mark.parametrize("patch_id", sorted(patches_in_code()))
def test_both_sides_of_every_patch_have_a_history(patch_id):
    """A `workflow.patched` branch that no history takes is never checked for determinism."""
    types = patches_in_code()[patch_id]
    taken = [patch_id in patches(p) for p in HISTORIES if p.name.split("_")[0] in types]
    assert any(taken), f"no recorded history takes patch {patch_id!r}"
    assert not all(taken), f"no recorded history of {sorted(types)} runs without patch {patch_id!r}"


def patches(path: Path) -> set[str]:
    """The ids of the patches a recorded run took."""
    events = json.loads(path.read_text())["events"]
    markers = [e["markerRecordedEventAttributes"] for e in events if "markerRecordedEventAttributes" in e]
    return {
        json.loads(base64.b64decode(payload["data"]))["id"]
        for m in markers
        if m["markerName"] == "core_patch"
        for payload in m["details"]["patch-data"]["payloads"]
    }


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_history_replays_without_nondeterminism(path):
    history = WorkflowHistory.from_json(path.stem, path.read_text())
    workflows = [JourneyWorkflow, JourneyWorkflowV1, BroadcastWorkflow, LifecycleWorkflow, ResendWorkflow]
    await Replayer(workflows=workflows, data_converter=DATA_CONVERTER).replay_workflow(history)
