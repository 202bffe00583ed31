"""The alerts that are firing, as an Alertmanager holds them: read from its API for the
gateway's page and the demo's terminal.

Prometheus evaluates the rules (deploy/prometheus/alerts.yml) and sends what fires to
the Alertmanager, which groups, inhibits and routes it to people. This module asks the
Alertmanager (``GET /api/v2/alerts``) what it holds now, so that whoever watches the
market also sees that, say, a feed is down or a venue stale, without a second screen.
Only arbstream's own alerts (named ``Arbstream...``) are kept; an alert the Alertmanager
holds back by an inhibition (one cause, one page) is kept too, marked ``inhibited``, so
the page can show it under the alert that inhibits it; silenced ones are left out
(someone said they know).

An Alertmanager that does not answer is a state of its own: ``AlertsReport.ok`` is
False with the reason, never an empty list that would read as "all is well".

An alert that was there when last asked and is gone now has resolved: it is kept for
``RESOLVED_KEEP_S`` as ``resolved`` with the time it was seen gone, so that a feed that
dropped for a minute while nobody looked still shows on the page.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp

from arbstream.gateway.errors import GatewayError

log = logging.getLogger(__name__)

#: How often the Alertmanager is asked. Prometheus sends alerts every evaluation (5 s in
#: the shipped config), so asking more often shows nothing sooner.
ALERTS_EVERY_S = 5.0
#: One request at most this long; a slower Alertmanager counts as not answering.
REQUEST_TIMEOUT_S = 4.0
#: The alerts of arbstream's rules; others an Alertmanager may hold are not ours to show.
NAME_PREFIX = "Arbstream"
#: Labels every alert carries that say nothing about which one it is.
_ROUTING_LABELS = frozenset({"alertname", "severity", "stack"})
#: Alerts kept at most (a broken rule could fire thousands; the page lists a screenful).
MAX_ALERTS = 200
_SEVERITY_ORDER = {"critical": 0, "warning": 1}
#: How long a resolved alert stays in the reports, and how many at most.
RESOLVED_KEEP_S = 900.0
MAX_RESOLVED = 20


@dataclass(frozen=True)
class Alert:
    """One alert the Alertmanager holds."""

    name: str
    severity: str
    #: What tells it from others of its name: venue, instrument, feed, route, job...
    labels: dict[str, str]
    summary: str
    runbook_url: str
    #: When it started firing (RFC 3339, as the Alertmanager says it).
    since: str
    #: The names of the alerts that inhibit it; empty when it is notified.
    inhibited_by: tuple[str, ...] = ()
    #: When it was first seen gone (time.time()); None while the Alertmanager holds it.
    resolved_at: float | None = None

    @property
    def key(self) -> tuple[str, tuple[tuple[str, str], ...]]:
        """Which alert it is: its name and labels (as the Alertmanager tells them)."""
        return self.name, tuple(sorted(self.labels.items()))

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "severity": self.severity,
            "labels": self.labels,
            "summary": self.summary,
            "runbook_url": self.runbook_url,
            "since": self.since,
            "inhibited": bool(self.inhibited_by),
            "resolved_at": None if self.resolved_at is None else round(self.resolved_at, 3),
        }

    def title(self) -> str:
        """``ArbstreamFeedDown feed=sge``: the name and what tells it apart."""
        labels = " ".join(f"{k}={v}" for k, v in sorted(self.labels.items()))
        return f"{self.name} {labels}".strip()


@dataclass(frozen=True)
class AlertsReport:
    """What the Alertmanager said when last asked: its alerts, or why it did not."""

    source: str  # the Alertmanager's URL, without credentials
    ok: bool
    alerts: tuple[Alert, ...] = ()
    error: str | None = None
    #: Alerts gone in the last RESOLVED_KEEP_S, the latest first.
    resolved: tuple[Alert, ...] = ()
    checked_at: float = field(default=0.0, compare=False)  # time.time(), for the page

    @property
    def firing(self) -> tuple[Alert, ...]:
        """The alerts that are notified (not held back by an inhibition); when ``ok`` is
        False, as they were when the Alertmanager last answered."""
        return tuple(a for a in self.alerts if not a.inhibited_by)

    def message(self) -> dict[str, Any]:
        """The gateway's ``alerts`` message (docs/gateway.md)."""
        return {
            "source": self.source,
            "ok": self.ok,
            "error": self.error,
            "checked_at": round(self.checked_at, 3),
            "alerts": [a.as_dict() for a in self.alerts],
            "resolved": [a.as_dict() for a in self.resolved],
        }


def parse_alerts(body: object) -> tuple[Alert, ...]:
    """The arbstream alerts of an Alertmanager's ``GET /api/v2/alerts`` answer, critical
    first, then by name and labels; raises GatewayError if it is not that API's shape."""
    if not isinstance(body, list):
        raise GatewayError(f"expected a list of alerts, got {type(body).__name__}")
    alerts = []
    for item in body:
        try:
            labels: Mapping[str, str] = item["labels"]
            annotations: Mapping[str, str] = item.get("annotations") or {}
            status: Mapping[str, Any] = item.get("status") or {}
            name = labels["alertname"]
            if not name.startswith(NAME_PREFIX) or status.get("silencedBy"):
                continue
            alerts.append(
                Alert(
                    name=name,
                    severity=labels.get("severity", "none"),
                    labels={k: v for k, v in labels.items() if k not in _ROUTING_LABELS},
                    summary=annotations.get("summary", ""),
                    runbook_url=annotations.get("runbook_url", ""),
                    since=str(item.get("startsAt", "")),
                    inhibited_by=tuple(status.get("inhibitedBy") or ()),
                )
            )
        except (KeyError, TypeError, AttributeError):
            raise GatewayError("an alert without labels.alertname") from None
    alerts.sort(key=lambda a: (_SEVERITY_ORDER.get(a.severity, 9), a.name, a.title()))
    return tuple(alerts[:MAX_ALERTS])


def parse_alertmanager_url(raw: str, name: str) -> str:
    """An Alertmanager's base URL (``http://host:9093``), checked; raises GatewayError
    naming the variable ``name``. Credentials in it are refused: they would show in
    every place the URL is shown."""
    parts = urlsplit(raw.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise GatewayError(f"{name}: expected an http(s)://host:port URL of an Alertmanager")
    if parts.username or parts.password:
        raise GatewayError(f"{name}: the URL must not hold credentials")
    if parts.query or parts.fragment:
        raise GatewayError(f"{name}: expected a base URL, without a query or fragment")
    return urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", ""))


def with_resolved(before: AlertsReport | None, now: AlertsReport) -> AlertsReport:
    """``now`` with its ``resolved`` list: those of ``before`` still recent and not firing
    again, and the alerts ``before`` held that ``now`` does not. When the Alertmanager does
    not answer, ``now`` keeps the alerts last seen (shown as such: ``ok`` is False) and
    resolves nothing."""
    if before is None:
        return now
    if not now.ok:
        return replace(now, alerts=before.alerts, resolved=before.resolved)
    held = {a.key for a in now.alerts}
    gone = [replace(a, resolved_at=now.checked_at) for a in before.alerts if a.key not in held]
    kept = [
        a
        for a in before.resolved
        if a.key not in held
        and a.resolved_at is not None
        and now.checked_at - a.resolved_at <= RESOLVED_KEEP_S
    ]
    return replace(now, resolved=tuple((gone + kept)[:MAX_RESOLVED]))


class AlertWatch:
    """Asks an Alertmanager for its alerts every ``every_s``; calls ``on_change`` with a
    report whenever what it says (its alerts, or that it does not answer) changes."""

    def __init__(
        self,
        url: str,
        on_change: Callable[[AlertsReport], None],
        every_s: float = ALERTS_EVERY_S,
    ) -> None:
        self.url = url
        self.report: AlertsReport | None = None  # None: not asked yet
        self._on_change = on_change
        self._every_s = every_s

    async def run(self) -> None:
        """Ask until cancelled."""
        timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while True:
                self._update(await self.ask(session))
                await asyncio.sleep(self._every_s)

    async def ask(self, session: aiohttp.ClientSession) -> AlertsReport:
        """One question: active and inhibited alerts, silenced ones left out."""
        query = {"active": "true", "silenced": "false", "inhibited": "true"}
        try:
            async with session.get(f"{self.url}/api/v2/alerts", params=query) as response:
                if response.status != 200:
                    raise GatewayError(f"HTTP {response.status}")
                body = await response.json(content_type=None)
            return AlertsReport(self.url, True, parse_alerts(body), checked_at=time.time())
        except (aiohttp.ClientError, TimeoutError, ValueError, GatewayError) as exc:
            why = str(exc) or type(exc).__name__
            return AlertsReport(self.url, False, error=why, checked_at=time.time())

    def _update(self, report: AlertsReport) -> None:
        before = self.report
        report = with_resolved(before, report)
        self.report = report
        if before == report:
            return
        if not report.ok and (before is None or before.ok):
            log.warning(
                "alerts: the Alertmanager at %s does not answer: %s", self.url, report.error
            )
        elif report.ok and before is not None and not before.ok:
            log.warning("alerts: the Alertmanager at %s answers again", self.url)
        self._on_change(report)
