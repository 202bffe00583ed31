"""Where a transaction's time goes, read from the broker's request log: how long each
request spent inside the broker (waiting for a thread, being handled, parked, waiting
to be sent back), and how long the client took between one request's answer and its
next request.

The broker logs every request it answers when started with ``KAFKA_REQUEST_LOG``
(deploy/kafka/kafka.sh; Kafka's ``kafka.request.logger`` at DEBUG, timestamps in
nanoseconds). For example, the worker at 1,000 ticks/s::

    KAFKA_PORT=39600 KAFKA_REQUEST_LOG=/tmp/requests.log deploy/kafka/kafka.sh up
    KAFKA_BOOTSTRAP=127.0.0.1:39600 python -m benchmarks.pipeline_bench \\
        --agent batched --latency-only --rate 1000
    python -m benchmarks.request_log /tmp/requests.log

Logging every request costs the broker CPU (at 5,000 ticks/s the worker's p99 doubled
with it on, 2026-11-30): read the figures as a breakdown of a transaction, not as the
latency the benchmarks report.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from benchmarks.stats import nearest_rank

MARK = b" Completed request:"
#: The answer while the coordinator still writes the previous transaction's markers.
CONCURRENT_TRANSACTIONS = 51
#: The times of a request, in the log's order and names (milliseconds).
TIMES = (
    ("total", "totalTimeMs"),
    ("queue", "requestQueueTimeMs"),
    ("local", "localTimeMs"),
    ("remote", "remoteTimeMs"),
    ("respq", "responseQueueTimeMs"),
    ("send", "sendTimeMs"),
)
DAY_S = 86_400.0


class RequestLogError(ValueError):
    """The file is not a broker request log this module can read."""


@dataclass(frozen=True)
class Request:
    """One answered request: when the broker read it and answered it (seconds of the
    day), what it was, and its times (ms, as ``TIMES`` names them)."""

    read: float
    answered: float
    api: str
    role: str
    txn_id: str | None
    producer_id: int | None
    times: dict[str, float]
    errors: frozenset[int]


def _seconds(stamp: bytes) -> float:
    """``HH:MM:SS.nnnnnnnnn`` as seconds of the day."""
    hms, _, nanos = stamp.partition(b".")
    h, m, s = hms.split(b":")
    if len(nanos) != 9:
        raise RequestLogError(f"timestamp {stamp!r}: want nanoseconds (kafka.sh's log layout)")
    return int(h) * 3600 + int(m) * 60 + int(s) + int(nanos) / 1e9


def _error_codes(value: Any, into: set[int]) -> set[int]:
    """Every ``errorCode`` / ``partitionErrorCode`` anywhere in an answer."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key.endswith("rrorCode") and isinstance(item, int):
                into.add(item)
            else:
                _error_codes(item, into)
    elif isinstance(value, list):
        for item in value:
            _error_codes(item, into)
    return into


def _role(api: str, client: str, request: dict[str, Any]) -> str:
    """What asked: consumers by their fetch wait, producers by whether they are
    transactional, the broker's own checks and markers by name."""
    if api == "FETCH":
        return f"FETCH maxWait={request.get('maxWaitMs')}"
    if api == "PRODUCE":
        return "PRODUCE transactional" if request.get("transactionalId") else "PRODUCE"
    if api == "ADD_PARTITIONS_TO_TXN" and "transactions" in request:
        return "ADD_PARTITIONS_TO_TXN (broker's check)"  # KIP-890: a produce's verification
    if api == "WRITE_TXN_MARKERS":
        return "WRITE_TXN_MARKERS (coordinator)"
    return api if client.startswith("aiokafka") else f"{api} ({client})"


def _txn_id(request: dict[str, Any]) -> str | None:
    txn = request.get("transactionalId") or request.get("v3AndBelowTransactionalId")
    if txn is None and request.get("transactions"):
        txn = request["transactions"][0].get("transactionalId")
    return txn if isinstance(txn, str) else None


def parse(lines: Iterable[bytes]) -> Iterator[Request]:
    """The requests of a request log; other lines are skipped, and so is a last line
    cut short (a broker stopped while writing it). A clock past midnight continues into
    the next day."""
    day = 0.0
    last = 0.0
    for line in lines:
        stamp, mark, body = line.partition(MARK)
        if not mark:
            continue
        answered = _seconds(stamp.strip()) + day
        if answered < last - DAY_S / 2:
            day += DAY_S
            answered += DAY_S
        last = answered
        try:
            record = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            if not line.endswith(b"\n"):
                return
            raise RequestLogError(f"a request that is not JSON ({exc}): {line[:120]!r}") from exc
        header, request = record["requestHeader"], record.get("request") or {}
        times = {name: float(record[key]) for name, key in TIMES}
        api = header["requestApiKeyName"]
        markers = request.get("markers") or [{}]
        yield Request(
            read=answered - times["total"] / 1000,
            answered=answered,
            api=api,
            role=_role(api, header.get("clientId", ""), request),
            txn_id=_txn_id(request),
            producer_id=request.get("producerId", markers[0].get("producerId")),
            times=times,
            errors=frozenset(_error_codes(record.get("response"), set())),
        )


def by_role(requests: list[Request], least: int = 20) -> list[str]:
    """Per kind of request (at least ``least`` of it): count, total p50/p99, and the p99 of
    each part of the total."""
    groups: dict[str, list[Request]] = defaultdict(list)
    for r in requests:
        groups[r.role].append(r)
    lines = [
        f"{'request':42} {'n':>6}  total p50/p99   queue   local  remote   respq    send (p99, ms)"
    ]
    for role, rows in sorted(groups.items(), key=lambda kv: -len(kv[1])):
        if len(rows) < least:
            continue
        col = {name: sorted(r.times[name] for r in rows) for name, _ in TIMES}
        parts = " ".join(f"{nearest_rank(col[name], 0.99):7.2f}" for name, _ in TIMES[1:])
        total = f"{nearest_rank(col['total'], 0.5):6.2f}/{nearest_rank(col['total'], 0.99):6.2f}"
        lines.append(f"{role:42} {len(rows):6}  {total}  {parts}")
    return lines


def busiest_transaction(requests: list[Request]) -> str | None:
    """The transactional id that committed most often."""
    ends = Counter(r.txn_id for r in requests if r.api == "END_TXN" and r.txn_id)
    return ends.most_common(1)[0][0] if ends else None


def chain(requests: list[Request], txn_id: str) -> list[str]:
    """One transactional producer's requests in the order the broker read them: the
    time each spent in the broker, and the time from one's answer to the next one's
    arrival (the client's part, with the network), by pair of kinds. The coordinator's
    markers for that producer are in the chain; the broker's own checks are not (they
    are part of a produce's remote time)."""
    producers = {r.producer_id for r in requests if r.txn_id == txn_id and r.api == "END_TXN"}
    own = sorted(
        (
            r
            for r in requests
            if (r.txn_id == txn_id and "broker's check" not in r.role)
            or (r.api == "WRITE_TXN_MARKERS" and r.producer_id in producers)
        ),
        key=lambda r: r.read,
    )
    steps: dict[str, list[float]] = defaultdict(list)
    retries = 0
    for before, after in itertools.pairwise(own):
        steps[f"{before.api} answered -> {after.api} read"].append(
            (after.read - before.answered) * 1000
        )
    for r in own:
        steps[f"in the broker: {r.api}"].append(r.times["total"])
        if r.api == "ADD_PARTITIONS_TO_TXN" and CONCURRENT_TRANSACTIONS in r.errors:
            retries += 1
    commits = sum(1 for r in own if r.api == "END_TXN")
    lines = [
        f"{txn_id}: {commits} transactions; {retries} AddPartitionsToTxn answered "
        "CONCURRENT_TRANSACTIONS (the previous commit's markers still being written)",
        f"{'step':64} {'n':>6}    p50    p90    p99 (ms)",
    ]
    for step, values in sorted(steps.items(), key=lambda kv: -len(kv[1])):
        if len(values) * 20 < commits:  # rarer than one transaction in 20
            continue
        ordered = sorted(values)
        q = "".join(f" {nearest_rank(ordered, p):6.2f}" for p in (0.5, 0.9, 0.99))
        lines.append(f"{step:64} {len(values):6} {q}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("log", type=Path, help="the file KAFKA_REQUEST_LOG named")
    parser.add_argument(
        "--txn",
        help="a transactional id (default: the busiest); the table covers its requests' span",
    )
    parser.add_argument("--least", type=int, default=20, help="skip rarer kinds of request")
    args = parser.parse_args(argv)
    try:
        with args.log.open("rb") as f:
            requests = list(parse(f))
    except (OSError, RequestLogError) as exc:
        print(f"request_log: {exc}", file=sys.stderr)
        return 2
    if not requests:
        print(f"request_log: no request in {args.log}", file=sys.stderr)
        return 2
    txn = args.txn or busiest_transaction(requests)
    if txn is not None:
        # the table covers the producer's run only (a log may hold several runs)
        own = [r for r in requests if r.txn_id == txn]
        if not own:
            print(f"request_log: no request of transactional id {txn!r}", file=sys.stderr)
            return 2
        start, end = own[0].read, own[-1].answered
        requests = [r for r in requests if start <= r.read and r.answered <= end]
    print(f"{len(requests):,} requests over {requests[-1].answered - requests[0].answered:.1f} s")
    print("\n".join(by_role(requests, args.least)))
    if txn is not None:
        print()
        print("\n".join(chain(requests, txn)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
