"""`temporal setup`: what a Temporal cluster needs once before carecast runs on it."""

from __future__ import annotations

import asyncio

from carecast.cli.common import fail, load_settings, say, temporal_app


@temporal_app.command("setup")
def setup() -> None:
    """Register carecast's search attributes on the namespace of CARECAST_TEMPORAL_ADDRESS (a self-hosted
    cluster; safe to run again), or print the steps Temporal Cloud takes them by. `carecast dev` needs none."""
    from temporalio.service import RPCError, RPCStatusCode

    from carecast.temporal import cloud_setup_steps, connect, is_temporal_cloud, register_search_attributes

    settings = load_settings()
    where = f"namespace {settings.temporal_namespace} on {settings.temporal_address}"
    if is_temporal_cloud(settings):
        say("\n".join(cloud_setup_steps(settings.temporal_namespace)))
        return

    async def run() -> list[str]:
        client = await connect(settings)
        return await register_search_attributes(client)

    try:
        added = asyncio.run(run())
    except RPCError as exc:
        if exc.status == RPCStatusCode.PERMISSION_DENIED:
            fail(f"{where} refused to add search attributes (permission denied): an operator of the cluster runs "
                 "this, or adds them with `temporal operator search-attribute create`")  # fmt: skip
        fail(f"{where}: {exc.message}")
    except RuntimeError as exc:  # no connection
        fail(f"cannot reach Temporal at {settings.temporal_address}: {exc}")
    if added:
        say(f"{where}: registered the search attributes {', '.join(added)}")
    else:
        say(f"{where}: carecast's search attributes are registered already")
