"""`carecast temporal setup`: a self-hosted cluster gets carecast's search attributes; Temporal Cloud, the steps."""

import subprocess
import sys
from pathlib import Path

import pytest
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.testing import WorkflowEnvironment

from carecast.temporal import DATA_CONVERTER
from workflows.search_attributes import ALL

CARECAST = str(Path(sys.executable).with_name("carecast"))
BIN = Path(sys.executable).parent
NAMES = sorted(key.name for key in ALL)


def setup(home: Path, address: str, namespace: str = "default") -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "CARECAST_HOME": str(home), "CARECAST_TEMPORAL_ADDRESS": address,
           "CARECAST_TEMPORAL_NAMESPACE": namespace}  # fmt: skip
    return subprocess.run([CARECAST, "temporal", "setup"], env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.integration
async def test_setup_registers_the_search_attributes_on_a_bare_cluster_once(tmp_path):
    env = await WorkflowEnvironment.start_local(  # a dev server started without carecast's attributes
        data_converter=DATA_CONVERTER, dev_server_existing_path=str(BIN / "temporal"), ui=False,
        dev_server_log_level="error",
    )  # fmt: skip
    try:
        address = env.client.service_client.config.target_host
        first = setup(tmp_path, address)
        assert first.returncode == 0, first.stderr
        assert f"namespace default on {address}: registered the search attributes {', '.join(NAMES)}" in first.stdout
        listed = await env.client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace="default")
        )
        assert set(NAMES) <= set(listed.custom_attributes)
        again = setup(tmp_path, address)
        assert again.returncode == 0 and "search attributes are registered already" in again.stdout
    finally:
        await env.shutdown()


def test_temporal_cloud_gets_the_steps_it_takes_them_by(tmp_path):
    done = setup(tmp_path, "payments.a1b2c.tmprl.cloud:7233", "payments.a1b2c")
    assert done.returncode == 0, done.stderr
    sa = " ".join(f'--sa "{name}=Keyword"' for name in [key.name for key in ALL])
    assert f"tcld namespace search-attributes add -n payments.a1b2c {sa}" in done.stdout


def test_an_unreachable_cluster_is_named(tmp_path):
    done = setup(tmp_path, "127.0.0.1:1")
    assert done.returncode == 1 and "cannot reach Temporal at 127.0.0.1:1" in done.stderr
