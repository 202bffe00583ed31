"""Reading an Alertmanager's alerts (gateway/alerts.py): which are kept and how they are
ordered, what a bad answer or URL gives, and how resolved alerts are kept and forgotten.
The same code against a real Alertmanager: tests/gateway/test_gateway_alerts.py."""

from __future__ import annotations

from typing import Any

import pytest

from arbstream.gateway.alerts import (
    MAX_RESOLVED,
    RESOLVED_KEEP_S,
    AlertsReport,
    parse_alertmanager_url,
    parse_alerts,
    with_resolved,
)
from arbstream.gateway.errors import GatewayError

SOURCE = "http://127.0.0.1:9093"


def held(name: str, severity: str = "warning", **labels: str) -> dict[str, Any]:
    """One alert of ``GET /api/v2/alerts`` (the fields arbstream reads, and some it
    does not)."""
    return {
        "labels": {"alertname": name, "severity": severity, "stack": "arbstream", **labels},
        "annotations": {"summary": f"{name} says", "runbook_url": f"docs/o.md#{name.lower()}"},
        "startsAt": "2026-12-07T08:00:00.000Z",
        "endsAt": "2026-12-07T08:10:00.000Z",
        "fingerprint": "0123456789abcdef",
        "receivers": [{"name": "arbstream-ticket"}],
        "status": {"state": "active", "silencedBy": [], "inhibitedBy": []},
    }


def test_arbstream_alerts_only_critical_first_silenced_left_out_inhibited_marked() -> None:
    silenced = held("ArbstreamWorkerDown", "critical")
    silenced["status"] = {"state": "suppressed", "silencedBy": ["s1"], "inhibitedBy": []}
    inhibited = held("ArbstreamQuoteStale", venue="SGE", instrument="XAG")
    inhibited["status"] = {"state": "suppressed", "silencedBy": [], "inhibitedBy": ["f00"]}
    body = [
        held("ArbstreamQuoteStale", venue="LBMA", instrument="XAG"),
        inhibited,
        held("NodeDiskFull", "critical"),  # another team's rule
        silenced,
        held("ArbstreamFeedDown", "critical", feed="sge"),
    ]
    alerts = parse_alerts(body)
    assert [(a.name, a.labels, bool(a.inhibited_by)) for a in alerts] == [
        ("ArbstreamFeedDown", {"feed": "sge"}, False),
        ("ArbstreamQuoteStale", {"venue": "LBMA", "instrument": "XAG"}, False),
        ("ArbstreamQuoteStale", {"venue": "SGE", "instrument": "XAG"}, True),
    ]
    first = alerts[0]
    assert first.title() == "ArbstreamFeedDown feed=sge"
    assert first.as_dict() == {
        "name": "ArbstreamFeedDown",
        "severity": "critical",
        "labels": {"feed": "sge"},
        "summary": "ArbstreamFeedDown says",
        "runbook_url": "docs/o.md#arbstreamfeeddown",
        "since": "2026-12-07T08:00:00.000Z",
        "inhibited": False,
        "resolved_at": None,
    }
    report = AlertsReport(SOURCE, True, alerts)
    assert [a.name for a in report.firing] == ["ArbstreamFeedDown", "ArbstreamQuoteStale"]


@pytest.mark.parametrize(
    "body",
    [{"alerts": []}, [{"annotations": {}}], [{"labels": {"severity": "critical"}}], ["text"]],
    ids=["an object", "no labels", "no alertname", "not an object"],
)
def test_an_answer_of_another_shape_is_an_error(body: object) -> None:
    with pytest.raises(GatewayError):
        parse_alerts(body)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("http://127.0.0.1:9093", "http://127.0.0.1:9093"),
        (" https://am.example:9093/ ", "https://am.example:9093"),
        ("http://proxy/alertmanager/", "http://proxy/alertmanager"),
    ],
)
def test_alertmanager_urls(raw: str, expected: str) -> None:
    assert parse_alertmanager_url(raw, "X") == expected


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        ("127.0.0.1:9093", "http(s)://host:port"),
        ("ftp://am:21", "http(s)://host:port"),
        ("http://admin:secret@am:9093", "must not hold credentials"),
        ("http://am:9093/?x=1", "without a query"),
    ],
)
def test_bad_alertmanager_urls_name_the_variable_and_never_echo_a_secret(
    raw: str, why: str
) -> None:
    with pytest.raises(GatewayError) as caught:
        parse_alertmanager_url(raw, "ARBSTREAM_GATEWAY_ALERTMANAGER_URL")
    message = str(caught.value)
    assert message.startswith("ARBSTREAM_GATEWAY_ALERTMANAGER_URL: ") and why in message
    assert "secret" not in message


def _report(*names: str, at: float, ok: bool = True) -> AlertsReport:
    alerts = parse_alerts([held(n) for n in names]) if ok else ()
    return AlertsReport(SOURCE, ok, alerts, None if ok else "refused", checked_at=at)


def test_an_alert_gone_is_resolved_lately_until_it_fires_again_or_is_old() -> None:
    first = _report("ArbstreamA", "ArbstreamB", at=1000.0)
    assert with_resolved(None, first) == first
    second = with_resolved(first, _report("ArbstreamA", at=1005.0))
    assert [(a.name, a.resolved_at) for a in second.resolved] == [("ArbstreamB", 1005.0)]
    assert second.message()["resolved"][0]["resolved_at"] == 1005.0
    # still recent: kept
    third = with_resolved(second, _report("ArbstreamA", at=1005.0 + RESOLVED_KEEP_S))
    assert [a.name for a in third.resolved] == ["ArbstreamB"]
    # fires again: no longer resolved
    again = with_resolved(second, _report("ArbstreamA", "ArbstreamB", at=1010.0))
    assert again.resolved == ()
    # old: forgotten
    old = with_resolved(third, _report("ArbstreamA", at=1006.0 + RESOLVED_KEEP_S))
    assert old.resolved == ()


def test_an_alertmanager_that_does_not_answer_resolves_nothing_and_keeps_the_last_seen() -> None:
    first = _report("ArbstreamA", "ArbstreamB", at=1000.0)
    away = with_resolved(first, _report(at=1005.0, ok=False))
    assert not away.ok and away.error == "refused"
    assert [a.name for a in away.alerts] == ["ArbstreamA", "ArbstreamB"]
    assert away.resolved == ()
    away_longer = with_resolved(away, _report(at=1010.0, ok=False))
    assert [a.name for a in away_longer.firing] == ["ArbstreamA", "ArbstreamB"]
    # back, with B gone meanwhile: B resolved (seen gone now)
    back = with_resolved(away_longer, _report("ArbstreamA", at=1015.0))
    assert [(a.name, a.resolved_at) for a in back.resolved] == [("ArbstreamB", 1015.0)]


def test_resolved_alerts_are_bounded() -> None:
    names = [f"ArbstreamR{i:02d}" for i in range(MAX_RESOLVED + 5)]
    before = _report(*names, at=1000.0)
    after = with_resolved(before, _report(at=1001.0))
    assert len(after.resolved) == MAX_RESOLVED
