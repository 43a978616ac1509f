"""Connecting to Temporal: the embedded dev server, a cluster, or Temporal Cloud."""

from __future__ import annotations

import dataclasses
import functools

from pydantic import TypeAdapter
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client
from temporalio.contrib.pydantic import PydanticJSONPlainPayloadConverter
from temporalio.converter import (
    CompositePayloadConverter,
    DataConverter,
    DefaultFailureConverterWithEncodedAttributes,
    DefaultPayloadConverter,
    JSONPlainPayloadConverter,
)
from temporalio.runtime import Runtime
from temporalio.service import RPCError, RPCStatusCode

from carecast.config import Settings
from carecast.temporal_codec import EncryptionCodec

# Every worker process builds the pydantic schema of each payload type once. Temporal gives every
# workflow instance a payload converter of its own, so a cache per converter (temporalio's) was
# rebuilt for every journey: its input's TypeAdapter alone cost several milliseconds of CPU.
_type_adapter = functools.lru_cache(maxsize=1024)(TypeAdapter)


class _SharedAdapters(PydanticJSONPlainPayloadConverter):
    def __init__(self) -> None:
        super().__init__()
        self._type_adapter = _type_adapter

    def __setstate__(self, state) -> None:
        super().__setstate__(state)
        self._type_adapter = _type_adapter


class PayloadConverter(CompositePayloadConverter):
    """Temporal's default converters, with JSON by pydantic (temporalio.contrib.pydantic) and shared adapters."""

    def __init__(self) -> None:
        pydantic_json = _SharedAdapters()
        super().__init__(
            *(
                pydantic_json if isinstance(c, JSONPlainPayloadConverter) else c
                for c in DefaultPayloadConverter.default_encoding_payload_converters
            )
        )


# Pydantic for every payload: a journey carries its campaign's models as they are (dataclasses,
# as every other payload is, encode to the same JSON as with Temporal's default converter).
DATA_CONVERTER = DataConverter(payload_converter_class=PayloadConverter)


def data_converter(settings: Settings) -> DataConverter:
    """carecast's converter, sealing every payload when CARECAST_TEMPORAL_PAYLOAD_KEY is set."""
    if not settings.temporal_payload_key:
        return DATA_CONVERTER
    codec = EncryptionCodec(settings.temporal_payload_key, previous=settings.previous_payload_keys)
    return dataclasses.replace(
        DATA_CONVERTER,
        payload_codec=codec,
        # failure messages and stack traces are sealed too: a provider's error text travels in them
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes,
    )


async def connect(settings: Settings, runtime: Runtime | None = None) -> Client:
    """A client as Temporal's client configuration and carecast's variables say (carecast/temporal_config.py);
    `runtime`, one that serves the SDK's metrics (carecast/metrics.py)."""
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        api_key=settings.temporal_api_key,
        tls=settings.temporal_tls,
        rpc_metadata=settings.temporal_rpc_metadata,
        data_converter=data_converter(settings),
        runtime=runtime,
    )


async def register_search_attributes(client: Client) -> list[str]:
    """Registers carecast's Keyword search attributes on the namespace (idempotent); returns those it added.

    The embedded dev server registers them at start; a cluster (`carecast temporal setup`) or a
    test server needs this once. Temporal Cloud namespaces take them through tcld or the Cloud UI
    instead (`cloud_setup_steps`).
    """
    from temporalio.api.enums.v1 import IndexedValueType
    from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest

    from workflows.search_attributes import ALL

    try:
        listed = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=client.namespace)
        )
        existing = set(listed.custom_attributes)
    except RPCError as err:
        if err.status != RPCStatusCode.UNIMPLEMENTED:
            raise
        existing = set()  # Temporal's time-skipping test server can add them but not list them
    missing = {key.name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD for key in ALL if key.name not in existing}
    if missing:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=client.namespace, search_attributes=missing)
        )
    return sorted(missing)


async def pollers(client: Client, task_queue: str, activities: bool = False) -> set[str]:
    """The identities (pid@host) of the workers that polled `task_queue` lately, for workflow (or activity) tasks."""
    kind = TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY if activities else TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW
    described = await client.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(
            namespace=client.namespace, task_queue=TaskQueue(name=task_queue), task_queue_type=kind
        )
    )
    return {poller.identity for poller in described.pollers}


def is_temporal_cloud(settings: Settings) -> bool:
    """Whether the address is Temporal Cloud's (its namespace endpoints, or the regional API key endpoints)."""
    host = settings.temporal_address.rsplit(":", 1)[0]
    return host.endswith((".tmprl.cloud", ".api.temporal.io"))


def cloud_setup_steps(namespace: str) -> list[str]:
    """What an operator runs for a Temporal Cloud namespace, which takes search attributes only from tcld or
    the Cloud UI."""
    from workflows.search_attributes import ALL

    attributes = " ".join(f'--sa "{key.name}=Keyword"' for key in ALL)
    return [
        f"Temporal Cloud: add carecast's search attributes to the namespace {namespace} once, with tcld",
        "(https://docs.temporal.io/cloud/tcld) after `tcld login`:",
        f"  tcld namespace search-attributes add -n {namespace} {attributes}",
        "or in the Cloud UI: Namespaces → " + namespace + " → Custom Search Attributes, each of type Keyword:",
        "  " + ", ".join(key.name for key in ALL),
    ]
