"""The gateway shows the alerts a real Alertmanager holds (``ARBSTREAM_GATEWAY_ALERTMANAGER_URL``):
arbstream's alerts only, critical first, inhibited ones marked, silenced ones left out;
a resolved alert kept as resolved lately; and, when the Alertmanager stops answering, a
message that says so, with the alerts as last seen (never an empty list that reads as
"all is well").

The Alertmanager runs the shipped config (its webhook pointed at a local receiver); the
alerts are posted to its API as Prometheus posts them, so the inhibition at work is the
shipped one: the feeds' Kafka alert holds back the staleness alert.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
import websockets

from helpers.alertmanager import (
    CONFIG,
    WEBHOOK_PLACEHOLDER,
    AlertmanagerServer,
    HttpReceiver,
)
from helpers.gateway import GatewayProcess, check_messages, quotes_site
from helpers.kafka import scaled

pytestmark = [pytest.mark.prometheus, pytest.mark.kafka]

KAFKA = {"alertname": "ArbstreamFeedKafkaDisconnected", "feed": "sge", "severity": "critical"}
STALE = {
    "alertname": "ArbstreamQuoteStale",
    "venue": "SGE",
    "instrument": "XAG",
    "severity": "warning",
}
WORKER = {"alertname": "ArbstreamWorkerDown", "instance": "w1", "severity": "critical"}
FOREIGN = {"alertname": "NodeDiskFull", "severity": "critical"}


def _alert(labels: dict[str, str], *, ends_in_s: float = 300.0) -> dict[str, Any]:
    """An alert as Prometheus posts it (``endsAt`` in the past: resolved)."""
    name = labels["alertname"]
    return {
        "labels": {**labels, "stack": "arbstream"},
        "annotations": {
            "summary": f"{name} summary",
            "runbook_url": f"docs/operations.md#{name.lower()}",
        },
        "startsAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 60)),
        "endsAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + ends_in_s)),
    }


async def _next_alerts(ws: Any, until: Any, timeout_s: float) -> dict[str, Any]:
    """The first ``alerts`` message for which ``until(message)`` holds."""
    deadline = time.monotonic() + scaled(timeout_s)
    seen: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        try:
            raw = await asyncio.wait_for(ws.recv(), max(0.1, deadline - time.monotonic()))
        except TimeoutError:
            break
        message = orjson.loads(raw)
        if message.get("type") == "alerts":
            check_messages([message])  # docs/schemas/gateway-message.schema.json
            seen.append(message)
            if until(message):
                return message
    raise AssertionError(f"no such alerts message in {timeout_s} s; got {seen[-3:]}")


def _names(alerts: list[dict[str, Any]]) -> list[tuple[str, bool]]:
    return [(a["name"], a["inhibited"]) for a in alerts]


def test_the_gateway_shows_what_the_alertmanager_holds(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    site = quotes_site(kafka_bootstrap, tmp_path)
    with HttpReceiver() as webhook:
        config = CONFIG.read_text().replace(WEBHOOK_PLACEHOLDER, webhook.url + "/hook")
        manager = AlertmanagerServer(config)
        with manager:
            manager.post_alerts([_alert(KAFKA), _alert(STALE), _alert(WORKER), _alert(FOREIGN)])
            manager.silence("ArbstreamWorkerDown")
            gateway = GatewayProcess(
                site.config,
                kafka_bootstrap,
                tmp_path / "gateway.log",
                ARBSTREAM_GATEWAY_ALERTMANAGER_URL=manager.url + "/",
                ARBSTREAM_GATEWAY_ALERTS_EVERY_S="1",
            )
            try:
                gateway.wait_ready()
                asyncio.run(_watch(gateway.url, manager))
            finally:
                gateway.stop()
    log = (tmp_path / "gateway.log").read_text()
    assert f"showing the alerts of the Alertmanager at {manager.url}" in log
    assert "does not answer" in log


async def _watch(url: str, manager: AlertmanagerServer) -> None:
    async with websockets.connect(url) as ws:
        await ws.send(orjson.dumps({"op": "subscribe", "filters": {"types": ["signal"]}}).decode())
        # the first message with both alerts held (the inhibition takes an evaluation)
        held = await _next_alerts(
            ws,
            lambda m: (
                _names(m["alerts"])
                == [("ArbstreamFeedKafkaDisconnected", False), ("ArbstreamQuoteStale", True)]
            ),
            30,
        )
        assert held["ok"] is True and held["error"] is None and held["resolved"] == []
        assert held["source"] == manager.url  # (the trailing slash dropped)
        kafka, stale = held["alerts"]
        assert kafka == {
            "name": "ArbstreamFeedKafkaDisconnected",
            "severity": "critical",
            "labels": {"feed": "sge"},  # alertname, severity, stack: shown elsewhere
            "summary": "ArbstreamFeedKafkaDisconnected summary",
            "runbook_url": "docs/operations.md#arbstreamfeedkafkadisconnected",
            "since": kafka["since"],
            "inhibited": False,
            "resolved_at": None,
        }
        assert stale["labels"] == {"venue": "SGE", "instrument": "XAG"}

        # a new subscriber's snapshot carries the latest alerts message
        async with websockets.connect(url) as second:
            await second.send(orjson.dumps({"op": "subscribe"}).decode())
            types = []
            while "end" not in types:
                message = orjson.loads(await asyncio.wait_for(second.recv(), scaled(10)))
                types.append(message.get("phase") or message.get("type") or "record")
                if message.get("type") == "alerts":
                    assert _names(message["alerts"]) == _names(held["alerts"])
            assert types.index("alerts") < types.index("end")

        # the broker is back: the Kafka alert resolves, the staleness one is notified now
        manager.post_alerts([_alert(KAFKA, ends_in_s=-1)])
        after = await _next_alerts(
            ws, lambda m: _names(m["alerts"]) == [("ArbstreamQuoteStale", False)], 30
        )
        [resolved] = after["resolved"]
        assert resolved["name"] == "ArbstreamFeedKafkaDisconnected"
        assert abs(resolved["resolved_at"] - time.time()) < scaled(30)

        # the Alertmanager stops: said so, with the alerts as last seen
        manager.__exit__(None, None, None)
        gone = await _next_alerts(ws, lambda m: m["ok"] is False, 30)
        assert gone["error"], gone
        assert _names(gone["alerts"]) == [("ArbstreamQuoteStale", False)]
        assert [a["name"] for a in gone["resolved"]] == ["ArbstreamFeedKafkaDisconnected"]
