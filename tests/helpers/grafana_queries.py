"""The PromQL in a Grafana dashboard JSON, made evaluable by a plain Prometheus.

Not a test module: tests/deploy/test_grafana.py checks the dashboard statically with it,
and the integration test evaluates its output against a real Prometheus.

- ``dashboard_queries(path)``: ``(panel title, expr)`` for every target of every panel,
  including panels nested in collapsed rows, plus the dashboard's Prometheus annotations
  (title ``"annotation: <name>"``);
- ``template_queries(path)``: ``(variable name, selector)`` for every ``label_values(...)``
  query variable, the selector being what ``label_values`` looks at, e.g.
  ``label_values(arbstream_spread_usd, instrument)`` -> ``arbstream_spread_usd``.

Grafana variables are replaced with values a plain Prometheus accepts (see
``SUBSTITUTIONS``); dashboard variables (``$instrument``, ``${venue}``, ...) become ``.+``,
so the dashboard must match them with ``=~``. An unknown variable raises ``KeyError``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# Grafana's built-in interval/range variables -> fixed PromQL durations.
SUBSTITUTIONS: dict[str, str] = {
    "__rate_interval": "1m",
    "__interval": "15s",
    "__range": "5m",
}
# Dashboard (template) variables -> a regex matching every value.
TEMPLATE_VARIABLE_VALUE = ".+"

# $name, ${name}, ${name:format} and the deprecated [[name]] / [[name:format]]
_VARIABLE = re.compile(
    r"\$\{(?P<braced>\w+)(?::[^}]*)?\}|\[\[(?P<bracketed>\w+)(?::[^\]]*)?\]\]|\$(?P<plain>\w+)"
)
_LABEL_VALUES = re.compile(r"^\s*label_values\s*\((?P<args>.*)\)\s*$", re.DOTALL)


def load_dashboard(path: str | Path) -> dict[str, Any]:
    """The dashboard JSON as a dict."""
    dashboard: dict[str, Any] = json.loads(Path(path).read_text(encoding="utf-8"))
    return dashboard


def template_variable_names(dashboard: dict[str, Any]) -> set[str]:
    """Names of the dashboard's template variables."""
    return {var["name"] for var in dashboard.get("templating", {}).get("list", [])}


def substitute(expr: str, variables: set[str] | frozenset[str] = frozenset()) -> str:
    """``expr`` with Grafana's variables replaced (see the module docstring).

    ``variables``: the dashboard's template variable names; any other ``$name`` that is not
    a built-in in ``SUBSTITUTIONS`` raises ``KeyError``.
    """

    def replace(match: re.Match[str]) -> str:
        name = match.group("braced") or match.group("bracketed") or match.group("plain")
        if name in SUBSTITUTIONS:
            return SUBSTITUTIONS[name]
        if name in variables:
            return TEMPLATE_VARIABLE_VALUE
        raise KeyError(f"unknown Grafana variable ${name} in {expr!r}")

    return _VARIABLE.sub(replace, expr)


def iter_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every panel, depth first, rows included and panels of collapsed rows after their row."""
    for panel in panels:
        yield panel
        yield from iter_panels(panel.get("panels", []))


def all_panels(path_or_dashboard: str | Path | dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel of the dashboard (see ``iter_panels``)."""
    dashboard = _as_dashboard(path_or_dashboard)
    return list(iter_panels(dashboard.get("panels", [])))


def raw_queries(path_or_dashboard: str | Path | dict[str, Any]) -> list[tuple[str, str]]:
    """``(title, expr)`` as written in the dashboard, variables not substituted."""
    dashboard = _as_dashboard(path_or_dashboard)
    queries: list[tuple[str, str]] = []
    for panel in iter_panels(dashboard.get("panels", [])):
        for target in panel.get("targets", []):
            expr = target.get("expr")
            if expr:
                queries.append((panel.get("title", ""), expr))
    for annotation in dashboard.get("annotations", {}).get("list", []):
        expr = annotation.get("expr")
        if expr:
            queries.append((f"annotation: {annotation.get('name', '')}", expr))
    return queries


def row_panel_titles(path: str | Path, row_title: str) -> set[str]:
    """Titles of the panels under the row titled ``row_title`` (up to the next row)."""
    titles: set[str] = set()
    inside = False
    for panel in iter_panels(load_dashboard(path).get("panels", [])):
        if panel.get("type") == "row":
            inside = panel.get("title") == row_title
        elif inside:
            titles.add(panel.get("title", ""))
    return titles


def dashboard_queries(path: str | Path) -> list[tuple[str, str]]:
    """``(panel title, expr)`` for every query of the dashboard, variables substituted."""
    dashboard = load_dashboard(path)
    variables = template_variable_names(dashboard)
    return [(title, substitute(expr, variables)) for title, expr in raw_queries(dashboard)]


def label_values_selector(query: str) -> str:
    """The series selector of a ``label_values(selector, label)`` query, as written.

    ``label_values(label)`` (no selector) is not supported: it has no PromQL equivalent.
    """
    match = _LABEL_VALUES.match(query)
    if not match:
        raise ValueError(f"not a label_values(...) query: {query!r}")
    selector, sep, label = match.group("args").rpartition(",")
    if not sep or not selector.strip() or not label.strip():
        raise ValueError(f"label_values without a selector: {query!r}")
    return selector.strip()


def template_queries(path: str | Path) -> list[tuple[str, str]]:
    """``(variable name, selector)`` for every ``label_values`` query variable."""
    dashboard = load_dashboard(path)
    variables = template_variable_names(dashboard)
    queries: list[tuple[str, str]] = []
    for var in dashboard.get("templating", {}).get("list", []):
        if var.get("type") != "query":
            continue
        query = var.get("query")
        if isinstance(query, dict):  # the Prometheus variable editor's object form
            query = query.get("query", "")
        queries.append((var["name"], substitute(label_values_selector(query), variables)))
    return queries


def _as_dashboard(path_or_dashboard: str | Path | dict[str, Any]) -> dict[str, Any]:
    if isinstance(path_or_dashboard, dict):
        return path_or_dashboard
    return load_dashboard(path_or_dashboard)


_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_BRACES = re.compile(r"\{[^}]*\}")
_BRACKETS = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_OFFSET = re.compile(r"\boffset\s+-?\w+")
_IDENTIFIER = re.compile(r"(?<![\w.:])[a-zA-Z_:][a-zA-Z0-9_:]*")
_KEYWORDS = frozenset(
    {"and", "or", "unless", "bool", "by", "without", "on", "ignoring", "group_left",
     "group_right", "offset", "inf", "nan"}
)  # fmt: skip


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (a lexical approximation).

    Drops strings, label matchers, ranges, grouping clauses and function names; what is
    left as an identifier is a metric name. Works on raw or substituted expressions.
    """
    text = _STRING.sub('""', expr)
    text = _BRACES.sub(" ", text)
    text = _BRACKETS.sub(" ", text)
    text = _GROUPING.sub(" ", text)
    text = _OFFSET.sub(" ", text)
    names: set[str] = set()
    for match in _IDENTIFIER.finditer(text):
        name = match.group()
        if name.lower() in _KEYWORDS or text[match.end() :].lstrip().startswith("("):
            continue  # an operator keyword, or a function / aggregation
        names.add(name)
    return names
