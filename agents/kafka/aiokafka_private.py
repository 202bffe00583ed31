"""What arbstream uses of aiokafka beyond its public API, in one place, checked at import.

* ``open_connection``: one connection to one broker, made the way aiokafka's clients
  make theirs (TLS, the API-versions request, the SASL handshake). Its errors say what
  failed; a client's own ``start`` only says that it could not bootstrap.
* ``transaction_error``: why a producer's transaction failed. When the broker refuses
  to add a partition to a transaction (a right removed), aiokafka keeps the refusal in
  the transaction's waiter and raises IllegalOperation ("not in transaction") on the
  next send instead.
* ``shorten_first_partition_retry``: a patch of aiokafka's module constant
  ``aiokafka.producer.sender.BACKOFF_OVERRIDE``, the pause before a new transaction asks
  again for its first partition. After a commit the broker writes the transaction's
  markers to every partition it touched, and until then answers CONCURRENT_TRANSACTIONS
  to the same producer; aiokafka retries after this constant (20 ms), and a worker
  starts its next transaction at once, so the pause lies on the path of every tick that
  arrives during a commit. aiokafka has no parameter for it (``retry_backoff_ms``
  covers the other retries, and lowering it would also hurry metadata and produce
  retries against a broker that is away). docs/performance.md ("Figures behind defaults")
  has the measurement that set it to 2 ms.
* ``abandon_producer``: close a producer without delivering what it holds. aiokafka has
  no public "close now": its ``stop`` first waits for the accumulator to drain. The
  sender task (``producer._sender.sender_task``) is cancelled first.
* ``commit_once``: one OffsetCommit request for a consumer's group, no retry. The
  consumer's ``commit`` retries in a loop around a shielded request; a caller cancelled
  during that request (a partition handed over, a close cut short) leaves the request's
  task behind, and CPython's ``shield`` then drops the callback that would retrieve its
  error, which asyncio logs with a traceback as never retrieved.
* ``bare_records``: a consumer built with it as its ``value_deserializer`` is handed
  aiokafka's own decoded records (``offset``, ``timestamp``, ``key``, ``value``,
  ``headers``; no ``topic`` or ``partition``) instead of a ``ConsumerRecord`` built for
  each. Building one costs nearly as much as fetching and decoding the record: 2.80 ->
  1.63 µs of CPU per record without it, and the worker's CPU per tick fell by a fifth
  (docs/performance.md, "the fetcher's records"). A patch of
  ``aiokafka.consumer.fetcher.PartitionRecords._consumer_record``, applied at import;
  every other consumer keeps aiokafka's records.
* Two requests aiokafka does not send: Metadata v8 and DescribeGroups v3 with the
  operations the broker authorises this client for on each topic and group (KIP-430).
  aiokafka's own DescribeGroups v3 decodes its answer with the v2 schema, which has no
  such field. The admin client's private ``_send_request`` sends them.

constraints.txt pins the aiokafka release these were written against; a release without
one of the names used here fails at import with an error that says so.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import aiokafka
from aiokafka import conn as _conn
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.consumer import fetcher as _fetcher
from aiokafka.consumer import group_coordinator as _group_coordinator
from aiokafka.errors import IllegalStateError
from aiokafka.producer import sender as _sender
from aiokafka.producer import transaction_manager as _transactions
from aiokafka.protocol import api as _api
from aiokafka.protocol import types as _types
from aiokafka.structs import OffsetAndMetadata, TopicPartition

from arbstream.agents.errors import AgentError

_NEEDED = (
    (_conn, "create_conn"),
    (_api, "Request"),
    (_api, "RequestStruct"),
    (_api, "Response"),
    (AIOKafkaAdminClient, "_send_request"),
    (_fetcher.PartitionRecords, "_consumer_record"),
    (_group_coordinator.GroupCoordinator, "_do_commit_offsets"),
    (_group_coordinator.GroupCoordinator, "ensure_coordinator_known"),
    (_transactions.TransactionManager, "wait_for_transaction_end"),
    (_sender, "BACKOFF_OVERRIDE"),
    (_sender.Sender, "sender_task"),
    *((_types, name) for name in ("Array", "Boolean", "Bytes", "Int16", "Int32", "Schema")),
)
for _module, _name in _NEEDED:
    if not hasattr(_module, _name):
        raise AgentError(
            f"aiokafka {aiokafka.__version__} has no {getattr(_module, '__name__', _module)}."
            f"{_name}: install the version in constraints.txt"
        )

Array, Boolean, Bytes = _types.Array, _types.Boolean, _types.Bytes
Int16, Int32, Schema, String = _types.Int16, _types.Int32, _types.Schema, _types.String

#: The broker's value for "authorised operations not computed".
OPERATIONS_UNKNOWN = -(2**31)


async def open_connection(host: str, port: int, timeout_s: float, options: dict[str, Any]) -> Any:
    """A connection to ``host:port`` with aiokafka's client ``options`` (security ones),
    after the API-versions request and the SASL handshake; raises what failed."""
    return await _conn.create_conn(
        host, port, request_timeout_ms=int(timeout_s * 1000), client_id="arbstream", **options
    )


#: Seconds between retries while the previous transaction's markers are written.
FIRST_PARTITION_RETRY_S = 0.002


def shorten_first_partition_retry(seconds: float | None = None) -> None:
    """Make a new transaction ask again for its first partition after ``seconds``
    (default :data:`FIRST_PARTITION_RETRY_S`, read when called)."""
    current = getattr(_sender, "BACKOFF_OVERRIDE", None)
    if not isinstance(current, float):
        raise AgentError(
            "aiokafka.producer.sender.BACKOFF_OVERRIDE is gone or not a float in this "
            "aiokafka release: install the version in constraints.txt"
        )
    _sender.BACKOFF_OVERRIDE = FIRST_PARTITION_RETRY_S if seconds is None else seconds


async def abandon_producer(producer: Any, timeout_s: float = 5.0) -> None:
    """Close ``producer`` without delivering what it still holds (its sender task is
    stopped first, so ``stop`` only closes the connections), within ``timeout_s``."""
    task = getattr(getattr(producer, "_sender", None), "sender_task", None)
    if task is not None and not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=timeout_s)
    with contextlib.suppress(Exception):
        await asyncio.wait_for(producer.stop(), timeout_s)
    # stop() marks the producer closed first: if it was cut short, close the client
    # here, or its connections and metadata task would outlive it.
    with contextlib.suppress(Exception):
        await asyncio.wait_for(producer.client.close(), 1)


async def commit_once(consumer: Any, offsets: dict[TopicPartition, int]) -> None:
    """Commit ``offsets`` for ``consumer``'s group in one request (raises its error);
    cancelling the caller cancels the request and leaves nothing behind.

    As the consumer's ``commit`` does, only for partitions assigned to it: the broker
    does not check who owns a partition, so a commit for one handed over would write
    over its new owner's offset. The assignment is read after the coordinator lookup,
    the one wait before the request."""
    coordinator = getattr(consumer, "_coordinator", None)
    if coordinator is None:
        raise IllegalStateError("the consumer is not in a group")
    await coordinator.ensure_coordinator_known()
    subscription = consumer._subscription.subscription
    assignment = None if subscription is None else subscription.assignment
    if assignment is None or not set(offsets) <= set(assignment.tps):
        raise IllegalStateError("a partition to commit is not assigned to this consumer")
    metadata = {tp: OffsetAndMetadata(offset, "") for tp, offset in offsets.items()}
    await coordinator._do_commit_offsets(assignment, metadata)


def bare_records(value: bytes | None) -> bytes | None:
    """The value deserializer of a consumer that takes aiokafka's records as they are
    decoded (see the module's docstring); without the patch it is the identity."""
    return value


_consumer_record = _fetcher.PartitionRecords._consumer_record


def _record_or_bare(self: Any, tp: TopicPartition, record: Any) -> Any:
    if self._value_deserializer is bare_records:
        return record
    return _consumer_record(self, tp, record)


_fetcher.PartitionRecords._consumer_record = _record_or_bare


def transaction_error(producer: Any) -> BaseException | None:
    """The error that ended ``producer``'s open transaction, if one did (retrieved, so
    that asyncio does not also log it as never retrieved)."""
    manager = getattr(producer, "_txn_manager", None)
    if manager is None:
        return None
    waiter = manager.wait_for_transaction_end()
    if waiter.done() and not waiter.cancelled():
        error: BaseException | None = waiter.exception()
        return error
    return None


class _MetadataResponseV8(_api.Response):  # type: ignore[misc]
    API_KEY = 3
    API_VERSION = 8
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        ("brokers", Array(("node_id", Int32), ("host", String("utf-8")), ("port", Int32),
                          ("rack", String("utf-8")))),
        ("cluster_id", String("utf-8")),
        ("controller_id", Int32),
        ("topics", Array(
            ("error_code", Int16),
            ("topic", String("utf-8")),
            ("is_internal", Boolean),
            ("partitions", Array(
                ("error_code", Int16),
                ("partition", Int32),
                ("leader", Int32),
                ("leader_epoch", Int32),
                ("replicas", Array(Int32)),
                ("isr", Array(Int32)),
                ("offline_replicas", Array(Int32)),
            )),
            ("authorized_operations", Int32),
        )),
        ("cluster_authorized_operations", Int32),
    )  # fmt: skip


class _MetadataRequestV8(_api.RequestStruct):  # type: ignore[misc]
    API_KEY = 3
    API_VERSION = 8
    RESPONSE_TYPE = _MetadataResponseV8
    SCHEMA = Schema(
        ("topics", Array(String("utf-8"))),
        ("allow_auto_topic_creation", Boolean),
        ("include_cluster_authorized_operations", Boolean),
        ("include_topic_authorized_operations", Boolean),
    )


class _MetadataWithOperations(_api.Request[_MetadataRequestV8]):  # type: ignore[misc]
    API_KEY = 3

    def __init__(self, topics: list[str]) -> None:
        self._topics = topics

    def build(self, request_struct_class: type[_MetadataRequestV8]) -> _MetadataRequestV8:
        # never create a topic by asking about it
        return request_struct_class(self._topics, False, False, True)


class _DescribeGroupsResponseV3(_api.Response):  # type: ignore[misc]
    API_KEY = 15
    API_VERSION = 3
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        ("groups", Array(
            ("error_code", Int16),
            ("group", String("utf-8")),
            ("state", String("utf-8")),
            ("protocol_type", String("utf-8")),
            ("protocol", String("utf-8")),
            ("members", Array(
                ("member_id", String("utf-8")),
                ("client_id", String("utf-8")),
                ("client_host", String("utf-8")),
                ("member_metadata", Bytes),
                ("member_assignment", Bytes),
            )),
            ("authorized_operations", Int32),
        )),
    )  # fmt: skip


class _DescribeGroupsRequestV3(_api.RequestStruct):  # type: ignore[misc]
    API_KEY = 15
    API_VERSION = 3
    RESPONSE_TYPE = _DescribeGroupsResponseV3
    SCHEMA = Schema(("groups", Array(String("utf-8"))), ("include_authorized_operations", Boolean))


class _GroupsWithOperations(_api.Request[_DescribeGroupsRequestV3]):  # type: ignore[misc]
    API_KEY = 15

    def __init__(self, groups: list[str]) -> None:
        self._groups = groups

    def build(
        self, request_struct_class: type[_DescribeGroupsRequestV3]
    ) -> _DescribeGroupsRequestV3:
        return request_struct_class(self._groups, True)


async def topic_operations(
    admin: AIOKafkaAdminClient, topics: list[str]
) -> dict[str, tuple[int, int]]:
    """Per topic: (error code, bit set of the operations this client may do on it)."""
    response = await admin._send_request(_MetadataWithOperations(topics))
    return {t[1]: (t[0], t[4]) for t in response.topics}


async def group_operations(admin: AIOKafkaAdminClient, group: str) -> tuple[int, int]:
    """For a group: (error code, bit set of the operations this client may do on it).
    The coordinator lookup is the first thing a group's Describe right is needed for:
    refused, it raises aiokafka's GroupAuthorizationFailedError."""
    node = await admin.find_coordinator(group)
    response = await admin._send_request(_GroupsWithOperations([group]), node)
    error, _, _, _, _, _, operations = response.groups[0]
    return int(error), int(operations)
