"""`carecast simulate` and `carecast test`: weeks of a contact's life with the campaigns, in seconds."""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
from pathlib import Path
from typing import Annotated

import typer

from carecast.cli.common import app, fail, load_settings, open_store, say

CONTACT_HELP = "a stored contact's id, or a YAML file describing one (the fields PUT /v1/contacts takes, and `id`)"
EVENTS_HELP = "a YAML file: events: [{event: NAME, at: OFFSET, data: {...}}, ...]"
EVENT_HELP = 'NAME[:JSON]@OFFSET, e.g. signed_up@0d or order_placed:{"order_id":"A-1"}@2d3h; repeat for more'


def _timeline_only() -> None:
    """What fails in a simulation is in its timeline: the SDK's warnings (with tracebacks) would only repeat it."""
    logging.getLogger("temporalio").setLevel(logging.ERROR)


def _outboxes(folder: Path | None, contacts: list[str]) -> list[Path | None]:
    """The folder for each contact's simulated messages: the one given, or a folder per contact for two."""
    if folder is None or len(contacts) == 1:
        return [folder] * len(contacts)
    names = [Path(contact).stem for contact in contacts]
    if len(set(names)) < len(names):  # the same file or name twice: keep them apart
        names = [f"{number}-{name}" for number, name in enumerate(names, start=1)]
    return [folder / name for name in names]


def _contact(value: str):
    from carecast.simulation.scenario import load_profile

    path = Path(value)
    if path.suffix in (".yaml", ".yml") or path.is_file():
        if not path.is_file():
            fail(f"{value}: no such file")
        return load_profile(path)
    return value


@app.command()
def simulate(
    contacts: Annotated[list[str], typer.Argument(help=CONTACT_HELP + "; two are shown side by side")],
    weeks: Annotated[float, typer.Option(help="how long to simulate")] = 3,
    event: Annotated[list[str] | None, typer.Option("--event", "-e", help=EVENT_HELP)] = None,
    events: Annotated[Path | None, typer.Option(help=EVENTS_HELP)] = None,
    campaigns: Annotated[
        Path | None, typer.Option(help="simulate this folder's campaign files, not the deployed versions")
    ] = None,
    outbox: Annotated[
        Path | None, typer.Option(help="write the simulated messages here (.eml, .txt) to read them in full")
    ] = None,
    start: Annotated[
        str | None, typer.Option(help="when it starts: monday 09:00 (the contact's zone) or 2027-01-04T09:00; now")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the timeline as JSON")] = False,
) -> None:
    """Run the campaigns for a contact over weeks of simulated time, and print what they would get.

    The real journeys, broadcasts (at their scheduled times), lifecycle stages, policy (quiet
    hours, windows, caps, preferences, the global ceiling) and templates, on Temporal's
    time-skipping server, against a scratch store: nothing is sent and the real store is only read.
    """
    from carecast.simulation.run import Scenario
    from carecast.simulation.run import simulate as run_simulation
    from carecast.simulation.scenario import (
        ScenarioError,
        check_start,
        events_within,
        horizon,
        load_events,
        parse_event,
    )

    if len(contacts) > 2:
        fail("simulate one contact, or two side by side")
    _timeline_only()
    settings = load_settings()
    try:
        scheduled = [parse_event(spec) for spec in event or []] + (load_events(events) if events else [])
        length = horizon(weeks)
        events_within(scheduled, length)
        scenarios = [Scenario(_contact(c), scheduled, length, campaigns, folder, start and check_start(start))
                     for c, folder in zip(contacts, _outboxes(outbox, contacts), strict=True)]  # fmt: skip
    except ScenarioError as exc:
        fail(str(exc))
    if campaigns is not None and not campaigns.is_dir():
        fail(f"--campaigns {campaigns}: not a folder of campaign files")
    needs_store = campaigns is None or any(isinstance(s.contact, str) for s in scenarios)
    engine = open_store(settings) if needs_store else None
    try:
        timelines = [asyncio.run(run_simulation(settings, scenario, engine)) for scenario in scenarios]
    except ScenarioError as exc:
        fail(str(exc))
    finally:
        if engine is not None:
            engine.dispose()
    if as_json:
        documents = [t.as_dict() for t in timelines]
        say(json.dumps(documents[0] if len(documents) == 1 else documents, indent=2))
    elif len(timelines) == 1:
        say("\n".join(timelines[0].lines()))
    else:
        say("\n".join(side_by_side(*timelines)))


def side_by_side(left, right) -> list[str]:
    """Two timelines in two columns, each in its contact's own local time, lined up by the moment."""
    width = max(60, (shutil.get_terminal_size((200, 40)).columns - 2) // 2)
    lines = [f"{left.lines()[0][:width]:<{width}}  {right.lines()[0][:width]}"]
    merged = sorted([(e.at, 0, e) for e in left.entries] + [(e.at, 1, e) for e in right.entries], key=lambda x: x[:2])
    for _, column, entry in merged:
        text = (left if column == 0 else right).line(entry)[:width]
        lines.append(f"{text:<{width}}" if column == 0 else f"{'':<{width}}  {text}")
    return lines


@app.command("test")
def test_campaigns(
    paths: Annotated[
        list[Path] | None, typer.Argument(help="campaign test files; all of campaigns/tests/ by default")
    ] = None,
) -> None:
    """Run the campaign tests: simulate each file's contact and events against the local campaign files,
    and check what they expect. A failure prints the timeline as a diff; exit 1 on any failure."""
    from carecast.campaign.documents import InvalidFile, load_model
    from carecast.simulation.expectations import CampaignTest, campaign_test_files, check, diff, unknown_names
    from carecast.simulation.run import Scenario
    from carecast.simulation.run import simulate as run_simulation
    from carecast.simulation.scenario import ScenarioError

    _timeline_only()
    settings = load_settings()
    folder = settings.campaigns_dir / "tests"
    files = paths or campaign_test_files(folder)
    if not files:
        fail(f"no campaign tests in {folder}: write one (see the README's 'Try a campaign before it goes out')")
    failed = 0
    for path in files:
        try:
            spec = load_model(path, CampaignTest)
            scenario = Scenario(spec.contact, spec.events, spec.length, settings.campaigns_dir, start=spec.start)
            timeline = asyncio.run(run_simulation(settings, scenario, None))
            if unknown := unknown_names(spec, timeline.sends):
                raise ScenarioError("\n".join(f"{path}: {problem}" for problem in unknown))
        except (InvalidFile, ScenarioError) as exc:
            failed += 1
            typer.secho(f"ERROR {path}\n{exc}", fg=typer.colors.RED, err=True)
            continue
        verdicts = [check(expectation, timeline) for expectation in spec.expect]
        problems = [v.problem for v in verdicts if v.problem]
        if not problems:
            say(f"pass  {path.name}  {spec.description}".rstrip())
            continue
        failed += 1
        typer.secho(f"FAIL  {path.name}  {spec.description}".rstrip(), fg=typer.colors.RED)
        for problem in problems:
            say(f"  ✗ {problem}")
        say("  timeline (+ should not have come, - did not come):")
        say("\n".join(f"    {line}" for line in diff(timeline, verdicts)))
    if failed:
        fail(f"{failed} of {len(files)} campaign test(s) failed")
    say(f"{len(files)} campaign test(s) passed")
