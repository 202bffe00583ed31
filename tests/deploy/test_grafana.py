"""The Grafana side of the deployment, checked statically (no Kafka, no Grafana).

Provisioning (datasource + dashboard provider) and deploy/grafana/dashboards/arbstream.json:
identity, layout, datasources, units, the contract's metric names, variable usage, and the
panels the operator needs. Evaluating the queries against a real Prometheus is the
integration test's job (it uses ``helpers.grafana_queries``).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from helpers.grafana_queries import (
    all_panels,
    dashboard_queries,
    label_values_selector,
    load_dashboard,
    metric_names,
    raw_queries,
    substitute,
    template_queries,
)
from helpers.metric_names import FEED_METRICS, HISTOGRAMS, WORKER_METRICS

REPO = Path(__file__).resolve().parents[2]
GRAFANA = REPO / "deploy" / "grafana"
DASHBOARDS = GRAFANA / "dashboards"
DASHBOARD = DASHBOARDS / "arbstream.json"
DATASOURCES = GRAFANA / "provisioning" / "datasources" / "prometheus.yml"
PROVIDERS = GRAFANA / "provisioning" / "dashboards" / "arbstream.yml"
MOUNT = "/var/lib/grafana/dashboards"
JOBS = {"arbstream-worker", "arbstream-feeds"}
GRID_WIDTH = 24


def load_yaml(text: str) -> Any:
    return YAML(typ="safe", pure=True).load(text)


# ---- fixtures -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    return load_dashboard(DASHBOARD)


@pytest.fixture(scope="module")
def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return all_panels(dashboard)


@pytest.fixture(scope="module")
def datasource() -> dict[str, Any]:
    config = load_yaml(DATASOURCES.read_text())
    assert config["apiVersion"] == 1
    prometheus = [ds for ds in config["datasources"] if ds["type"] == "prometheus"]
    assert len(prometheus) == 1, config
    return prometheus[0]


def _is_row(panel: dict[str, Any]) -> bool:
    return panel.get("type") == "row"


# ---- provisioning -------------------------------------------------------------------
def test_datasource_is_the_compose_prometheus(datasource: dict[str, Any]) -> None:
    assert datasource["uid"] == "prometheus"
    assert datasource["url"] == "http://prometheus:9090"
    assert datasource["access"] == "proxy"
    assert datasource["isDefault"] is True
    assert datasource["editable"] is False
    # $__rate_interval is derived from timeInterval: keep it the scrape interval
    scrape = re.search(
        r"^\s*scrape_interval:\s*(\S+)",
        (REPO / "deploy" / "prometheus" / "prometheus.yml").read_text(),
        re.MULTILINE,
    )
    if scrape:
        assert datasource["jsonData"]["timeInterval"] == scrape.group(1)


def test_dashboard_provider_loads_the_mounted_dashboards() -> None:
    config = load_yaml(PROVIDERS.read_text())
    assert config["apiVersion"] == 1
    (provider,) = config["providers"]
    assert provider["type"] == "file"
    assert provider["folder"] == "arbstream"
    assert provider["options"]["path"] == MOUNT
    assert sorted(p.name for p in DASHBOARDS.glob("*.json")) == ["arbstream.json"]


# ---- dashboard ----------------------------------------------------------------------
def test_dashboard_identity(dashboard: dict[str, Any]) -> None:
    assert json.loads(DASHBOARD.read_text())  # parses
    assert dashboard["uid"] == "arbstream"
    assert dashboard["title"] == "arbstream"
    assert dashboard["schemaVersion"] == 39
    assert dashboard["refresh"] == "5s"
    assert dashboard["time"] == {"from": "now-15m", "to": "now"}
    assert "id" not in dashboard or dashboard["id"] is None  # provisioned: Grafana assigns it


def test_panels_have_unique_ids_and_a_grid_position(panels: list[dict[str, Any]]) -> None:
    ids = [p.get("id") for p in panels]
    assert all(isinstance(i, int) for i in ids), ids
    assert len(ids) == len(set(ids)), sorted(ids)
    for panel in panels:
        pos = panel.get("gridPos")
        assert pos and set(pos) >= {"x", "y", "w", "h"}, panel.get("title")
        assert all(isinstance(pos[k], int) and pos[k] >= 0 for k in "xywh"), panel["title"]
        assert pos["w"] >= 1 and pos["h"] >= 1 and pos["x"] + pos["w"] <= GRID_WIDTH, panel


def _overlaps(panels: list[dict[str, Any]]) -> list[tuple[str, str]]:
    found = []
    boxes = [(p["title"], p["gridPos"]) for p in panels]
    for n, (a, pa) in enumerate(boxes):
        for b, pb in boxes[n + 1 :]:
            if (
                pa["x"] < pb["x"] + pb["w"]
                and pb["x"] < pa["x"] + pa["w"]
                and pa["y"] < pb["y"] + pb["h"]
                and pb["y"] < pa["y"] + pa["h"]
            ):
                found.append((a, b))
    return found


def test_panels_do_not_overlap(dashboard: dict[str, Any]) -> None:
    top = dashboard["panels"]
    assert _overlaps(top) == []
    for row in top:
        if _is_row(row) and row.get("collapsed"):
            assert _overlaps(row.get("panels", [])) == [], row["title"]
        elif _is_row(row):
            assert row.get("panels", []) == [], f"expanded row {row['title']} nests panels"


def test_every_panel_and_query_uses_the_provisioned_datasource(
    panels: list[dict[str, Any]], datasource: dict[str, Any]
) -> None:
    expected = {"type": "prometheus", "uid": datasource["uid"]}
    for panel in panels:
        if _is_row(panel) and "datasource" not in panel:
            continue
        assert panel.get("datasource") == expected, panel["title"]
        targets = panel.get("targets", [])
        assert _is_row(panel) or targets, f"{panel['title']} has no query"
        refs = [t.get("refId") for t in targets]
        assert len(refs) == len(set(refs)), panel["title"]
        for target in targets:
            assert target.get("datasource", expected) == expected, panel["title"]
            assert target.get("expr", "").strip(), f"{panel['title']} {target.get('refId')}"


def test_every_panel_has_a_unit(panels: list[dict[str, Any]]) -> None:
    for panel in panels:
        if _is_row(panel):
            continue
        unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit")
        assert unit, f"{panel['title']} has no unit"
        # currencyUSD would print "$1.23": a price difference per ounce is not dollars
        assert unit != "currencyUSD", panel["title"]
        if "USD/oz" in panel["title"]:
            assert unit == "suffix: USD/oz", panel["title"]


def test_queries_use_only_contract_metric_names(dashboard: dict[str, Any]) -> None:
    known = WORKER_METRICS | FEED_METRICS
    histogram_series = {f"{h}{s}" for h in HISTOGRAMS for s in ("_bucket", "_sum", "_count")}
    used: set[str] = set()
    for title, expr in raw_queries(dashboard):
        names = metric_names(expr)
        assert names, f"{title}: no metric in {expr!r}"
        for name in names:
            if name.startswith("arbstream_"):
                assert name in known | histogram_series, f"{title}: {name} not in the contract"
            else:  # the default collectors of prometheus-client
                assert name.startswith(("process_", "python_")), f"{title}: {name}"
        used |= names
    for _, selector in template_queries(DASHBOARD):
        assert metric_names(selector) <= known, selector
    # histograms are read through their buckets (quantiles), never as a bare name
    assert not used & HISTOGRAMS
    # the dashboard shows most of the contract (a sanity check on the extraction)
    shown = {n for n in used if n in known} | {
        h for h in HISTOGRAMS if any(s.startswith(h) for s in used)
    }
    assert len(shown) >= len(known) - 2, sorted(known - shown)


def test_metric_name_extraction() -> None:
    expr = (
        'histogram_quantile(0.99, sum by (le) (rate(a_bucket{job=~"x|y"}[$__rate_interval]))) '
        "/ on (venue) group_left () max by (venue) (b) > bool 1e3 or vector(0)"
    )
    assert metric_names(expr) == {"a_bucket", "b"}
    assert metric_names('count(c offset 5m) unless d{e="f(g)"}') == {"c", "d"}


def test_job_matchers_name_contract_jobs(dashboard: dict[str, Any]) -> None:
    for title, expr in raw_queries(dashboard):
        for op, value in re.findall(r'\bjob\s*(=~|!~|=|!=)\s*"([^"]*)"', expr):
            jobs = set(value.split("|")) if op.endswith("~") else {value}
            assert jobs <= JOBS, f"{title}: job {op} {value!r}"


def test_ranges_and_variables_are_grafana_friendly(dashboard: dict[str, Any]) -> None:
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    for title, expr in raw_queries(dashboard):
        for window in re.findall(r"\[([^\]]*)\]", expr):
            # $__rate_interval: at least 4 scrapes, so rate() always has 2 samples
            assert window in {"$__rate_interval", "$__range"}, f"{title}: [{window}]"
        for var in variables:
            uses = re.findall(rf"(\w+\s*(?:=~|!~|=|!=)\s*)\"\$\{{?{var}\b", expr)
            bare = len(re.findall(rf"\$\{{?{var}\b", expr))
            assert len(uses) == bare, f"{title}: ${var} outside a label matcher"
            for use in uses:
                label, op = re.match(r"(\w+)\s*(\S+)", use).groups()  # type: ignore[union-attr]
                assert (label, op) == (var, "=~"), f"{title}: {use.strip()}${var} is not =~"


def test_template_variables(dashboard: dict[str, Any]) -> None:
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert set(variables) == {"instrument", "venue"}
    assert variables["instrument"]["query"] == (
        "label_values(arbstream_quote_age_seconds, instrument)"
    )
    assert variables["venue"]["query"] == "label_values(arbstream_ticks_total, venue)"
    for var in variables.values():
        assert var["type"] == "query"
        assert var["datasource"] == {"type": "prometheus", "uid": "prometheus"}
        assert var["includeAll"] is True and var["multi"] is True
        assert var["refresh"] in {1, 2}  # on load / on time range change
    assert template_queries(DASHBOARD) == [
        ("instrument", "arbstream_quote_age_seconds"),
        ("venue", "arbstream_ticks_total"),
    ]


def test_queries_are_substituted_for_plain_prometheus() -> None:
    queries = dashboard_queries(DASHBOARD)
    assert len(queries) == len(raw_queries(load_dashboard(DASHBOARD)))
    for title, expr in queries:
        assert "$" not in expr and "[[" not in expr, f"{title}: {expr}"
    assert any(title.startswith("annotation: ") for title, _ in queries)
    # panels of collapsed rows are included
    collapsed = [
        c["title"]
        for row in load_dashboard(DASHBOARD)["panels"]
        if row.get("collapsed")
        for c in row.get("panels", [])
    ]
    assert collapsed and set(collapsed) <= {title for title, _ in queries}


def test_substitute() -> None:
    variables = {"instrument", "venue"}
    assert (
        substitute(
            'rate(x{instrument=~"$instrument", venue=~"${venue}", a=~"[[venue:regex]]"}'
            "[$__rate_interval]) + increase(y[$__range]) + z[$__interval]",
            variables,
        )
        == 'rate(x{instrument=~".+", venue=~".+", a=~".+"}[1m]) + increase(y[5m]) + z[15s]'
    )
    assert substitute('x{instrument=~"${instrument:pipe}"}', variables) == 'x{instrument=~".+"}'
    with pytest.raises(KeyError, match="__interval_ms"):
        substitute("x[$__interval_ms]", variables)
    with pytest.raises(KeyError, match="nope"):
        substitute('x{a=~"$nope"}', variables)
    assert label_values_selector('label_values(m{a=~"b,c"}, lbl)') == 'm{a=~"b,c"}'
    with pytest.raises(ValueError, match="selector"):
        label_values_selector("label_values(venue)")


# ---- what the operator needs --------------------------------------------------------
REQUIRED_PANELS = {
    # keyword (in a panel title, case-insensitive) -> what the panel is for
    "spread": "spreads by pair, USD/oz and bps",
    "z-score": "spread z-scores by pair and window",
    "arbitrage": "open arbitrage routes",
    "route net": "route net USD/oz over time",
    "signal": "signal event rates",
    "quote age": "quote age per venue",
    "tick rate": "tick rates per venue",
    "reject": "DLQ rejections by reason",
    "latency": "processing latency quantiles",
    "batch size": "records per transaction",
    "lag": "consumer lag by partition",
    "worker ready": "worker readiness",
    "feed": "feed health",
    "basis by pair": "basis by pair, bps",
    "lease rate": "implied lease rate by pair",
    "venue sessions": "each venue open or closed over time",
    "delivery coverage": "registered stock over open interest per venue",
    "size at the edge": "ounces each route is good for",
}


def test_required_panels_exist(panels: list[dict[str, Any]]) -> None:
    titles = [p["title"].lower() for p in panels if not _is_row(p)]
    missing = [k for k in REQUIRED_PANELS if not any(k in t for t in titles)]
    assert not missing, f"no panel for: {missing}"
    exprs = " ".join(e for _, e in raw_queries(load_dashboard(DASHBOARD)))
    for needle in (
        "arbstream_spread_usd",
        "arbstream_spread_bps",
        "arbstream_spread_zscore",
        'clock="instrument"',
        'clock="wall"',
        "histogram_quantile(0.5,",
        "histogram_quantile(0.95,",
        "histogram_quantile(0.99,",
        "arbstream_processing_latency_seconds_bucket",
        "arbstream_feed_buffer_records",
        "arbstream_feed_kafka_dropped_total",
        "arbstream_feed_kafka_send_errors_total",
        "arbstream_feed_reconnects_total",
        "arbstream_feed_seq_gaps_total",
        "arbstream_feed_last_frame_age_seconds",
        "arbstream_feed_bad_frames_total",
        "arbstream_venue_open",
        "arbstream_basis_open",
        "arbstream_delivery_open",
        "arbstream_delivery_open_ratio",
    ):
        assert needle in exprs, needle


def test_overview_stats_lead_the_dashboard(dashboard: dict[str, Any]) -> None:
    top = dashboard["panels"]
    first_row_end = next(
        (n for n, p in enumerate(top) if n > 0 and _is_row(p)), len(top)
    )  # panels before the second row
    stats = [p for p in top[:first_row_end] if not _is_row(p)]
    assert stats and all(p["type"] == "stat" for p in stats)
    assert all(p["gridPos"]["y"] <= 1 for p in stats)
    titles = " | ".join(p["title"].lower() for p in stats)
    for keyword in ("open", "feeds connected", "worker ready", "p99", "dlq"):
        assert keyword in titles, keyword
