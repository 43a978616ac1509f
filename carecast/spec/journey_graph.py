"""Checks that span a journey's steps: every target exists, every step can be reached,
and every loop waits somewhere (a loop without a wait would message a contact
as fast as the worker can run)."""

from __future__ import annotations

from carecast.spec.campaign import Campaign, Step

WAITING = ("wait", "wait_until", "wait_for")


def successors(steps: list[Step], index: int) -> list[tuple[str, tuple]]:
    """(target step id, location in the file) of every step this one can lead to."""
    step = steps[index]
    following = steps[index + 1].id if index + 1 < len(steps) else None
    loc = ("steps", index)
    targets: list[tuple[str, tuple]] = []
    if step.exit:
        return []
    if step.branch is not None:
        for n, case in enumerate(step.branch.cases):
            targets.append((case.goto, (*loc, "branch", "cases", n, "goto")))
        if step.branch.otherwise is not None:
            targets.append((step.branch.otherwise, (*loc, "branch", "otherwise")))
        elif following:
            targets.append((following, loc))
        return targets
    if step.wait_for is not None and step.wait_for.on_timeout is not None:
        targets.append((step.wait_for.on_timeout, (*loc, "wait_for", "on_timeout")))
    if following:
        targets.append((following, loc))
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

    waits = {step.id for step in steps if step.kind in WAITING}
    cycle = _cycle_without_wait({s: [t for t in ts if t not in waits] for s, ts in edges.items() if s not in waits})
    if cycle:
        first = index[cycle[0]]
        problems.append((("steps", first, "id"), f"steps {' -> '.join(cycle + [cycle[0]])} loop without a wait step"))
    return problems


def _cycle_without_wait(edges: dict[str, list[str]]) -> list[str] | None:
    """A cycle in `edges` (which holds no waiting step), or None."""
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in edges.get(node, []):
            if state.get(target) == 1:
                return path[path.index(target) :]
            if target not in state and (found := visit(target)):
                return found
        state[node] = 2
        path.pop()
        return None

    for node in edges:
        if node not in state and (found := visit(node)):
            return found
    return None
