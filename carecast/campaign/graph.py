"""Checks that span a journey's steps: every target exists, every step can be reached,
and every loop waits somewhere (a loop without a wait would message a contact
as fast as the worker can run)."""

from __future__ import annotations

from graphlib import CycleError, TopologicalSorter

from carecast.campaign.model import Campaign
from carecast.campaign.steps import Step


def successors(steps: list[Step], index: int) -> list[tuple[str, tuple]]:
    """(target step id, location in the file) of every step this one can lead to."""
    step = steps[index]
    loc = ("steps", index)
    targets = [(target, (*loc, *where)) for target, where in step.jumps()]
    if step.when_spent is not None:
        targets.append((step.when_spent, (*loc, "when_spent")))
    if step.falls_through() and index + 1 < len(steps):
        targets.append((steps[index + 1].id, loc))
    return targets


def journey_problems(campaign: Campaign) -> list[tuple[tuple, str]]:
    """(location, message) for each problem of the journey's step graph."""
    steps = campaign.steps
    index = {step.id: n for n, step in enumerate(steps)}
    problems: list[tuple[tuple, str]] = []
    seen: set[str] = set()
    for n, step in enumerate(steps):
        if step.id in seen:
            problems.append((("steps", n, "id"), f"step id {step.id!r} is used twice"))
        seen.add(step.id)
    edges: dict[str, list[str]] = {}
    for n, step in enumerate(steps):
        edges[step.id] = []
        for target, loc in successors(steps, n):
            if target not in index:
                problems.append((loc, f"no step {target!r} in this journey; steps are {', '.join(index)}"))
            else:
                edges[step.id].append(target)
    if problems or not steps:
        return problems

    reachable = {steps[0].id}
    frontier = [steps[0].id]
    while frontier:
        for target in edges[frontier.pop()]:
            if target not in reachable:
                reachable.add(target)
                frontier.append(target)
    for n, step in enumerate(steps):
        if step.id not in reachable:
            problems.append((("steps", n, "id"), f"step {step.id!r} can never be reached"))

    waits = {step.id for step in steps if step.waits}
    # The moves that happen without waiting: every move out of a step that does not wait; and a step that
    # waits but has `when_spent` is passed without waiting once spent, straight on to that jump.
    passes = {step.id: step.when_spent for step in steps if step.waits and step.when_spent is not None}
    moves = {step.id: [passes[step.id]] if step.id in passes else edges[step.id] for step in steps}
    moves = {
        s: [t for t in ts if t not in waits or t in passes] for s, ts in moves.items() if s not in waits or s in passes
    }
    cycle = _cycle(moves, index)
    if cycle:
        problems.append((("steps", index[cycle[0]], "id"), f"steps {' -> '.join(cycle)} loop without a wait step"))
    return problems


def _cycle(edges: dict[str, list[str]], order: dict[str, int]) -> list[str] | None:
    """A cycle of `edges` in their direction, from its step that comes first in the file back to it."""
    try:
        # The sorter reads the mapping as node -> predecessors, so it reports the cycle backwards.
        TopologicalSorter(edges).prepare()
    except CycleError as error:
        cycle = list(reversed(error.args[1]))[:-1]
        start = min(range(len(cycle)), key=lambda n: order[cycle[n]])
        cycle = cycle[start:] + cycle[:start]
        return [*cycle, cycle[0]]
    return None
