"""What each process's role needs of the cluster, as the rights ``require_rights``
checks when it starts. docs/deploy.md grants them with one prefixed ACL per resource
type; a test runs every role on a secured broker with exactly those ACLs."""

from __future__ import annotations

from arbstream.agents.kafka.access import Rights
from arbstream.agents.kafka.topics import Topics

_WRITE = ("Write", "Describe")
_READ = ("Read", "Describe")


def feed_rights(topics: Topics) -> Rights:
    """``arbstream feed`` and ``arbstream produce``: they write the input."""
    return Rights("feed", {topics.ticks: _WRITE, topics.fx: _WRITE})


def worker_rights(topics: Topics) -> Rights:
    """The exactly-once worker: reads the ticks, writes the outputs, reads and writes
    its state, in its group, and reads its topics' settings to check them (its
    transactional ids are checked when its producers start: Kafka has no request that
    says whether one may be used)."""
    outputs = (topics.spreads, topics.basis, topics.signals, topics.dlq)
    rights = {
        topics.ticks: _READ,
        topics.fx: ("Describe",),
        **{name: _WRITE for name in outputs},
        topics.state: ("Read", "Write", "Describe"),
    }
    return Rights(
        "worker",
        {name: (*ops, "DescribeConfigs") for name, ops in rights.items()},
        {topics.group: _READ},
    )


def faust_rights(topics: Topics) -> Rights:
    """The Faust runtime: as the worker, with its tables' changelogs and its group."""
    outputs = (topics.spreads, topics.basis, topics.signals, topics.dlq)
    return Rights(
        "Faust runtime",
        {
            topics.ticks: _READ,
            **{name: _WRITE for name in outputs},
            **{name: ("Read", "Write", "Describe") for name in topics.state_topics("faust")},
        },
        {topics.faust_group: _READ},
    )


def gateway_rights(topics: Topics) -> Rights:
    """The gateway: it reads the outputs and the ticks."""
    names = (topics.ticks, topics.spreads, topics.basis, topics.signals)
    return Rights("gateway", {name: _READ for name in names})
