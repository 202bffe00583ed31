"""Will the cluster let this process in, and let it do what its role needs?

Asked when a command starts, so that a wrong password, an unknown user, an untrusted
certificate, a client speaking the wrong protocol to a listener, or a missing ACL stops
the command at once with one line that says which, instead of aiokafka's "Unable to
bootstrap" or a client that retries for ever:

* ``require_broker``: a TCP connect, then one connection made as the clients make theirs
  (TLS, the SASL handshake) and one request on it;
* ``require_rights``: the operations the broker grants this client on each of the role's
  topics and its group, asked for with the request that returns them (KIP-430), against
  what the role needs (docs/deploy.md has the ACLs that grant it).

A right lost while the process runs surfaces as an authorisation error of aiokafka;
``denial`` words it the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from aiokafka import errors as kafka_errors
from aiokafka.admin import AIOKafkaAdminClient

from arbstream.agents.errors import DEPLOY_DOC, KafkaRefusedError
from arbstream.agents.kafka.aiokafka_private import (
    OPERATIONS_UNKNOWN,
    group_operations,
    open_connection,
    topic_operations,
)
from arbstream.agents.kafka.clients import KafkaClients
from arbstream.agents.kafka.probe import STARTUP_PROBE_TIMEOUT_S, reachable_address
from arbstream.agents.kafka.security import CAFILE, CERTFILE, PROTOCOL
from arbstream.streams.errors import SetupError

#: How long the first connection (TLS, SASL, one request) may take.
HANDSHAKE_TIMEOUT_S = 10.0
#: Kafka's ACL operation codes (org.apache.kafka.common.acl.AclOperation).
OPERATIONS = {
    "Read": 3,
    "Write": 4,
    "Create": 5,
    "Delete": 6,
    "Alter": 7,
    "Describe": 8,
    "DescribeConfigs": 10,
    "AlterConfigs": 11,
}
UNKNOWN_TOPIC = 3  # UNKNOWN_TOPIC_OR_PARTITION


@dataclass(frozen=True)
class Rights:
    """What a role needs of the cluster: operations per topic and per group."""

    role: str
    topics: Mapping[str, tuple[str, ...]]
    groups: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


async def require_broker(kafka: KafkaClients) -> None:
    """Raise SetupError unless a broker answers at ``ARBSTREAM_BROKER`` and lets this
    client in; the message names what failed: no broker, TLS verification, the TLS or
    SASL handshake, authentication."""
    address = await reachable_address(kafka.bootstrap, STARTUP_PROBE_TIMEOUT_S)
    if address is None:
        raise SetupError(f"ARBSTREAM_BROKER: no Kafka broker answers at {kafka.bootstrap}")
    host, port = address
    from aiokafka.protocol.metadata import MetadataRequest  # noqa: PLC0415

    connection = None
    try:
        connection = await asyncio.wait_for(
            open_connection(host, port, HANDSHAKE_TIMEOUT_S, kafka.security.aiokafka()),
            HANDSHAKE_TIMEOUT_S,
        )
        await asyncio.wait_for(connection.send(MetadataRequest([])), HANDSHAKE_TIMEOUT_S)
    except (OSError, kafka_errors.KafkaError, TimeoutError) as exc:
        raise KafkaRefusedError(_handshake_failure(exc, kafka, f"{host}:{port}")) from None
    finally:
        if connection is not None:
            connection.close()


def _handshake_failure(exc: BaseException, kafka: KafkaClients, address: str) -> str:
    """One line: what went wrong in the first connection, and what to look at."""
    security = kafka.security
    protocol = f"{PROTOCOL} is {security.protocol}"
    where = f"Kafka at {address}"
    if isinstance(exc, ssl.SSLCertVerificationError):
        trust = f"the CA in {CAFILE}" if security.cafile else f"the system's CAs (set {CAFILE})"
        return (
            f"{where}: TLS verification failed: {exc.verify_message}; the broker's "
            f"certificate must be signed by {trust} and name the host dialled"
        )
    if isinstance(exc, ssl.SSLError):
        return (
            f"{where}: the TLS handshake failed ({exc.reason or exc}): the listener may "
            f"not speak TLS ({protocol}), or may want a client certificate ({CERTFILE})"
        )
    if isinstance(exc, kafka_errors.SaslAuthenticationFailed):
        return (
            f"{where}: authentication failed: the broker refuses user "
            f"{security.username!r} with {security.mechanism} (unknown user or wrong "
            "password)"
        )
    if isinstance(exc, kafka_errors.UnsupportedSaslMechanismError):
        return f"{where}: SASL mechanism {security.mechanism} refused: {exc}"
    if isinstance(exc, kafka_errors.IllegalSaslStateError):
        return f"{where}: this listener does not take SASL ({protocol}): try SSL or PLAINTEXT"
    if isinstance(exc, TimeoutError):
        return (
            f"{where}: no answer to the first request within {HANDSHAKE_TIMEOUT_S:.0f} s "
            f"({protocol}: is that what this listener speaks?)"
        )
    # The connection closed (or was reset) before an answer.
    if not security.tls:
        hint = f"the listener may expect TLS ({protocol})"
    elif not security.sasl:
        hint = (
            f"the listener may expect SASL ({protocol}), or a client certificate "
            f"({CERTFILE} is {'set' if security.certfile else 'not set'})"
        )
    else:
        hint = f"the listener may not take SASL, or not TLS ({protocol})"
    return f"{where}: the broker closed the connection before answering: {hint}"


async def require_rights(kafka: KafkaClients, rights: Rights) -> None:
    """Raise KafkaRefusedError naming the first operation the broker would deny this
    client on one of ``rights``' topics or groups. Topics that do not exist are not
    checked (the caller creates them, or waits for them)."""
    admin = kafka.admin(request_timeout_ms=int(HANDSHAKE_TIMEOUT_S * 1000))
    try:
        await admin.start()
        found = await topic_operations(admin, sorted(rights.topics))
        for topic, needed in sorted(rights.topics.items()):
            error, operations = found.get(topic, (UNKNOWN_TOPIC, OPERATIONS_UNKNOWN))
            if error == kafka_errors.TopicAuthorizationFailedError.errno:
                raise KafkaRefusedError(_denied(kafka, rights, "Describe", "topic", topic))
            if error == 0:
                _check(kafka, rights, "topic", topic, needed, operations)
        for group, needed in sorted(rights.groups.items()):
            try:
                error, operations = await _group_operations(admin, group)
            except kafka_errors.GroupAuthorizationFailedError:
                error = kafka_errors.GroupAuthorizationFailedError.errno
            if error == kafka_errors.GroupAuthorizationFailedError.errno:
                raise KafkaRefusedError(_denied(kafka, rights, "Describe", "group", group))
            _check(kafka, rights, "group", group, needed, operations)
    except kafka_errors.KafkaError as exc:
        why = f"Kafka at {kafka}: cannot check this client's rights: {exc}"
        raise KafkaRefusedError(why) from exc
    finally:
        with contextlib.suppress(Exception):
            await admin.close()


async def _group_operations(admin: AIOKafkaAdminClient, group: str) -> tuple[int, int]:
    """``group_operations``, asked again while the group coordinator is not ready (the
    first group of a new cluster waits for its offsets topic to be made)."""
    deadline = time.monotonic() + HANDSHAKE_TIMEOUT_S
    while True:
        try:
            error, operations = await group_operations(admin, group)
        except kafka_errors.KafkaError as exc:
            if not exc.retriable or time.monotonic() > deadline:
                raise
        else:
            if not kafka_errors.for_code(error).retriable or time.monotonic() > deadline:
                return error, operations
        await asyncio.sleep(0.2)


def _check(
    kafka: KafkaClients,
    rights: Rights,
    kind: str,
    name: str,
    needed: tuple[str, ...],
    operations: int,
) -> None:
    if operations == OPERATIONS_UNKNOWN:
        return  # a broker that does not say (no authoriser): nothing to check
    for operation in needed:
        if not operations & (1 << OPERATIONS[operation]):
            allowed = [op for op, code in OPERATIONS.items() if operations & (1 << code)]
            raise KafkaRefusedError(
                _denied(
                    kafka,
                    rights,
                    operation,
                    kind,
                    name,
                    f" (allowed: {', '.join(allowed) or 'nothing'})",
                )
            )


def _denied(
    kafka: KafkaClients,
    rights: Rights,
    operation: str,
    kind: str,
    name: str,
    allowed: str = "",
) -> str:
    return (
        f"Kafka at {kafka.bootstrap} denies {kafka.security.principal} {operation} on "
        f"{kind} {name!r}{allowed}; the {rights.role} needs it ({DEPLOY_DOC})"
    )


def denial(
    exc: BaseException, kafka: KafkaClients, operation: str, topic: str | None = None
) -> str | None:
    """For an authorisation error of aiokafka, one line naming the operation and the
    resource; None for any other error. ``operation`` is what the caller did to a topic
    (Read, Write), ``topic`` the topic if the error does not name it; a group is
    denied Read (joining it, committing its offsets)."""
    who = f"Kafka at {kafka.bootstrap} denies {kafka.security.principal}"
    if isinstance(exc, kafka_errors.TopicAuthorizationFailedError):
        named = repr(topic) if topic is not None else _named(exc)
        return f"{who} {operation} on topic {named} ({DEPLOY_DOC})"
    if isinstance(exc, kafka_errors.GroupAuthorizationFailedError):
        return f"{who} Read on group {_named(exc)} ({DEPLOY_DOC})"
    if isinstance(exc, kafka_errors.TransactionalIdAuthorizationFailed):
        return f"{who} Write on transactional id {_named(exc)} ({DEPLOY_DOC})"
    if isinstance(exc, kafka_errors.ClusterAuthorizationFailedError):
        return (
            f"{who} IdempotentWrite on the cluster (an idempotent producer needs it, or "
            f"Write on a topic) ({DEPLOY_DOC})"
        )
    return None


AUTHORIZATION_ERRORS = (
    kafka_errors.TopicAuthorizationFailedError,
    kafka_errors.GroupAuthorizationFailedError,
    kafka_errors.TransactionalIdAuthorizationFailed,
    kafka_errors.ClusterAuthorizationFailedError,
)


def _named(exc: BaseException) -> str:
    """The resources an aiokafka authorisation error names (its arguments: a name, or a
    set of names), quoted."""
    names: list[str] = []
    for arg in exc.args:
        if isinstance(arg, str) and arg:
            names.append(arg)
        elif isinstance(arg, (set, frozenset, list, tuple)):
            names.extend(sorted(str(a) for a in arg))
    return ", ".join(repr(n) for n in names) if names else "(not named by the broker)"
