"""The Alertmanager side of the deployment, with Debian's amtool and alertmanager
(``scripts/install-alertmanager.sh``): the shipped config is valid and routes every rule by
its severity; its commented receiver examples are valid, and deliver through a real
Alertmanager where this one knows their settings; its inhibitions name real alerts and
never hide a page behind a ticket; and every rule has a summary, a description and a
runbook_url whose heading exists in docs/operations.md ("Runbooks").

No Kafka. The end-to-end delivery from the live system is tests/test_alert_delivery.py.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from io import StringIO
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from ruamel.yaml import YAML

from helpers.alertmanager import (
    CONFIG,
    WEBHOOK_PLACEHOLDER,
    AlertmanagerServer,
    HttpReceiver,
    alertmanager_bin_dir,
    amtool,
    amtool_version,
    firing_alert,
)
from helpers.paths import REPO

# (amtool, and a real Alertmanager for the examples' delivery)
pytestmark = pytest.mark.prometheus

ALERTS = REPO / "deploy" / "prometheus" / "alerts.yml"
PROMETHEUS_CONFIG = REPO / "deploy" / "prometheus" / "prometheus.yml"
OPERATIONS = REPO / "docs" / "operations.md"
COMPOSE = REPO / "docker-compose.yml"

#: Where each severity of alerts.yml goes.
RECEIVER_OF = {"critical": "arbstream-page", "warning": "arbstream-ticket"}
#: Receiver settings that hold a secret inline: the config must read them from files.
INLINE_SECRETS = {
    "api_url",
    "api_key",
    "auth_password",
    "bot_token",
    "routing_key",
    "service_key",
    "token",
    "user_key",
    "webhook_url",
}
#: The parts of every runbook section, in this order.
RUNBOOK_PARTS = ("**What it means.**", "**Check first.**", "**What to do.**")


def _yaml(text: str) -> Any:
    return YAML(typ="safe").load(text)  # resolves the anchors (the shared webhook)


def _dump(document: Any) -> str:
    out = StringIO()
    YAML(typ="safe").dump(document, out)
    return out.getvalue()


def _rules() -> list[dict[str, Any]]:
    document = _yaml(ALERTS.read_text())
    return [rule for group in document["groups"] for rule in group["rules"] if "alert" in rule]


RULES = _rules()
SEVERITY = {rule["alert"]: rule["labels"]["severity"] for rule in RULES}


def assert_ok(proc: Any) -> None:
    assert proc.returncode == 0, (
        f"`{' '.join(map(str, proc.args))}` exited with {proc.returncode}\n"
        f"--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}"
    )


def _check_config_text(tmp_path: Path, text: str, name: str) -> Any:
    path = tmp_path / name
    path.write_text(text)
    return amtool("check-config", path)


# ---- the shipped config ----------------------------------------------------------------


def test_the_shipped_config_is_valid() -> None:
    proc = amtool("check-config", CONFIG)
    assert_ok(proc)
    config = _yaml(CONFIG.read_text())
    # amtool read what the file holds (an indentation slip could drop a section silently)
    assert f"{len(config['inhibit_rules'])} inhibit rules" in proc.stdout, proc.stdout
    assert f"{len(config['receivers'])} receivers" in proc.stdout, proc.stdout
    assert len(config["inhibit_rules"]) >= 2


def test_the_webhook_is_a_placeholder_and_no_secret_is_inline() -> None:
    text = CONFIG.read_text()
    # one URL, shared by the receivers (a YAML anchor): a test or an operator replaces it once
    assert text.count(WEBHOOK_PLACEHOLDER) == 1
    assert (urlsplit(WEBHOOK_PLACEHOLDER).hostname or "").endswith(".invalid")
    config = _yaml(text)
    for receiver in config["receivers"]:
        hooks = receiver.get("webhook_configs") or []
        assert [hook["url"] for hook in hooks] == [WEBHOOK_PLACEHOLDER], receiver["name"]
        assert all(hook.get("send_resolved", True) for hook in hooks), receiver["name"]
        for integration, settings in receiver.items():
            if integration.endswith("_configs"):
                for setting in settings:
                    inline = INLINE_SECRETS & set(setting)
                    assert not inline, f"{receiver['name']}: {integration} has {inline}"
    assert not INLINE_SECRETS & set(config.get("global") or {})


ROUTING_TABLE = [
    # (an alert's labels, the receiver it must reach)
    ({"alertname": "ArbstreamFeedDown", "severity": "critical", "feed": "sge"}, "arbstream-page"),
    (
        {
            "alertname": "ArbstreamQuoteStale",
            "severity": "warning",
            "venue": "SGE",
            "instrument": "XAG",
        },
        "arbstream-ticket",
    ),
    ({"alertname": "ArbstreamFeedKafkaDisconnected", "severity": "critical"}, "arbstream-page"),
    (
        {"alertname": "ArbstreamConsumerLagHigh", "severity": "warning", "topic": "arb.ticks"},
        "arbstream-ticket",
    ),
    # not from alerts.yml: an alert without a known severity still reaches people
    ({"alertname": "SomethingElse"}, "arbstream-ticket"),
    ({"alertname": "SomethingElse", "severity": "info"}, "arbstream-ticket"),
]


def _route(labels: dict[str, str], receiver: str) -> Any:
    return amtool(
        "config",
        "routes",
        "test",
        f"--config.file={CONFIG}",
        f"--verify.receivers={receiver}",
        *(f"{k}={v}" for k, v in labels.items()),
    )


@pytest.mark.parametrize(("labels", "receiver"), ROUTING_TABLE, ids=str)
def test_routing_table(labels: dict[str, str], receiver: str) -> None:
    proc = _route(labels, receiver)
    assert_ok(proc)  # --verify.receivers: a different receiver exits 1
    assert proc.stdout.split() == [receiver]


@pytest.mark.parametrize("rule", RULES, ids=lambda r: str(r["alert"]))
def test_every_rule_reaches_the_receiver_of_its_severity(rule: dict[str, Any]) -> None:
    severity = rule["labels"].get("severity")
    assert severity in RECEIVER_OF, f"{rule['alert']}: severity {severity!r} has no route"
    proc = _route({"alertname": rule["alert"], **rule["labels"]}, RECEIVER_OF[severity])
    assert_ok(proc)
    assert proc.stdout.split() == [RECEIVER_OF[severity]]


# ---- inhibitions -----------------------------------------------------------------------


def _alert_names(matchers: list[str]) -> set[str]:
    """The alert names a list of matchers selects (alertname = or =~ a|b|c)."""
    names: set[str] = set()
    for matcher in matchers:
        match = re.fullmatch(r'alertname(=~|=)"([^"]+)"', matcher.strip())
        assert match, f"not an alertname matcher: {matcher!r}"
        alternatives = match.group(2).split("|") if match.group(1) == "=~" else [match.group(2)]
        for name in alternatives:
            assert re.fullmatch(r"\w+", name), f"{name!r} in {matcher!r} is not a plain name"
        names.update(alternatives)
    return names


def test_inhibitions_name_alerts_that_exist_and_keep_the_page() -> None:
    config = _yaml(CONFIG.read_text())
    external = _yaml(PROMETHEUS_CONFIG.read_text())["global"]["external_labels"]
    targets_seen: set[str] = set()
    holds: set[tuple[str, str]] = set()
    for rule in config["inhibit_rules"]:
        sources = _alert_names(rule["source_matchers"])
        targets = _alert_names(rule["target_matchers"])
        holds |= {(s, t) for s in sources for t in targets}
        for name in sources | targets:
            assert name in SEVERITY, f"inhibit rule names {name}, which alerts.yml lacks"
        assert sources and targets and not sources & targets, rule
        # A cause that inhibits a page must page itself: else nobody is woken at all.
        if any(SEVERITY[t] == "critical" for t in targets):
            assert all(SEVERITY[s] == "critical" for s in sources), rule
        # `stack` (the Prometheus external label) keeps the inhibition within one stack
        assert "stack" in rule["equal"] and "stack" in external, rule
        targets_seen |= targets
    # two alerts that hold each other could both go unnotified
    assert not {(t, s) for s, t in holds} & holds

    # the ones the issue asks for: Kafka down hides the venues' feed and staleness alerts
    # and the workers' lag; a worker down hides its lag alert
    def held_by(source: str) -> set[str]:
        return set().union(
            *(
                _alert_names(r["target_matchers"])
                for r in config["inhibit_rules"]
                if source in _alert_names(r["source_matchers"])
            )
        )

    assert {
        "ArbstreamFeedDown",
        "ArbstreamFeedSilent",
        "ArbstreamQuoteStale",
        "ArbstreamConsumerLagHigh",
        "ArbstreamCommitsStalled",
    } <= held_by("ArbstreamFeedKafkaDisconnected")
    assert {"ArbstreamCommitsStalled", "ArbstreamConsumerLagHigh"} <= held_by("ArbstreamWorkerDown")
    # data loss is never hidden
    assert "ArbstreamFeedBufferDropping" not in targets_seen


# ---- the commented examples ------------------------------------------------------------


@dataclass(frozen=True)
class Example:
    name: str
    min_version: tuple[int, int] | None  # "(Alertmanager >= 0.26 ...)" in its marker
    lines: range  # the commented lines between its markers (0-based line numbers)


BEGIN = re.compile(r"^\s*# --- example: (?P<name>[^(]+?)\s*(?P<note>\(.*\))?\s*---\s*$")
END = re.compile(r"^\s*# --- end of example ---\s*$")


def examples(text: str) -> list[Example]:
    found: list[Example] = []
    lines = text.splitlines()
    start: int | None = None
    name, version = "", None
    for n, line in enumerate(lines):
        begin = BEGIN.match(line)
        if begin:
            assert start is None, f"line {n + 1}: an example inside an example"
            start, name = n + 1, begin.group("name")
            wanted = re.search(r">= (\d+)\.(\d+)", begin.group("note") or "")
            version = (int(wanted.group(1)), int(wanted.group(2))) if wanted else None
        elif END.match(line):
            assert start is not None, f"line {n + 1}: an end without a beginning"
            found.append(Example(name, version, range(start, n)))
            start = None
        elif start is not None:
            assert re.match(r"^\s*#( |$)", line), f"line {n + 1} of {name} is not commented"
    assert start is None, f"example {name} has no end marker"
    return found


def uncommented(text: str, chosen: list[Example]) -> str:
    """``text`` with the lines of ``chosen`` examples uncommented: the first "# " (or a
    lone "#") removed, the indentation kept, as an operator would."""
    lines = text.splitlines()
    for example in chosen:
        for n in example.lines:
            lines[n] = re.sub(r"^(\s*)# ?", r"\1", lines[n], count=1)
    return "\n".join(lines) + "\n"


def _file_settings(example_text: str) -> list[str]:
    return re.findall(r"^\s*-?\s*(\w+_file):", example_text, re.M)


def test_the_commented_examples_are_valid(tmp_path: Path) -> None:
    text = CONFIG.read_text()
    found = examples(text)
    assert {e.name.split()[0] for e in found} == {"PagerDuty", "Slack", "Telegram"}
    lines = text.splitlines()
    for example in found:
        body = uncommented(text, [example]).splitlines()
        snippet = "\n".join(body[n] for n in example.lines)
        # each reads its secret from a file, and names the alert's runbook
        assert _file_settings(snippet), f"{example.name}: no *_file setting"
        assert not INLINE_SECRETS & set(re.findall(r"(\w+):", snippet)), example.name
        assert "runbook_url" in snippet, example.name
        assert all(lines[n] != body[n] for n in example.lines if lines[n].strip() != "#")

    everything = uncommented(text, found)
    integrations = {
        key for receiver in _yaml(everything)["receivers"] for key in receiver if "_configs" in key
    }
    assert integrations == {
        "webhook_configs",
        "pagerduty_configs",
        "slack_configs",
        "telegram_configs",
    }

    # A setting younger than this amtool: it must be the only thing amtool refuses, and
    # the example with the setting in its older, inline form must pass (the rest of the
    # example is then proven valid; the compose image is new enough: test below).
    version = amtool_version()
    older = [e for e in found if e.min_version is not None and e.min_version > version]
    checked = everything
    if older:
        proc = _check_config_text(tmp_path, everything, "as-is.yml")
        refused = set(re.findall(r"field (\w+) not found", proc.stdout + proc.stderr))
        younger = {
            setting
            for e in older
            for setting in _file_settings("\n".join(everything.splitlines()[n] for n in e.lines))
        }
        assert proc.returncode != 0 and refused == younger, proc.stdout + proc.stderr
        for setting in younger:
            checked = re.sub(
                rf"^(\s*-?\s*){setting}: .*$",
                rf'\g<1>{setting.removesuffix("_file")}: "0:placeholder-for-amtool-{version[1]}"',
                checked,
                flags=re.M,
            )
    proc = _check_config_text(tmp_path, checked, "examples.yml")
    assert_ok(proc)
    assert f"{len(_yaml(checked)['receivers'])} receivers" in proc.stdout


def test_the_compose_image_knows_every_examples_settings() -> None:
    images = re.findall(r"image:\s*prom/alertmanager:v(\d+)\.(\d+)\.(\d+)", COMPOSE.read_text())
    assert len(images) == 1, images
    compose_version = (int(images[0][0]), int(images[0][1]))
    for example in examples(CONFIG.read_text()):
        if example.min_version is not None:
            assert compose_version >= example.min_version, example.name


def test_the_examples_deliver_through_a_real_alertmanager(tmp_path: Path) -> None:
    """The Slack and PagerDuty examples, as an operator would uncomment them, and the
    webhook, pointed at a local receiver: their templates render real alerts, their
    secrets come from the files, and each alert's runbook link is in the message."""
    text = CONFIG.read_text()
    version = amtool_version()
    usable = [e for e in examples(text) if e.min_version is None or e.min_version <= version]
    assert {e.name.split()[0] for e in usable} >= {"PagerDuty", "Slack"}
    with HttpReceiver() as receiver:
        config_text = uncommented(text, usable).replace(
            WEBHOOK_PLACEHOLDER, receiver.url + "/webhook"
        )
        for secret in ("slack-webhook-url", "pagerduty-routing-key"):
            assert f"/run/secrets/{secret}" in config_text
        # the secrets' files in the server's directory ({dir}, after YAML: quoted there)
        config_text = config_text.replace("/run/secrets/", "__dir__/")
        config = _yaml(config_text)
        # (notify at once, not after the shipped group_wait of up to a minute)
        for route in [config["route"], *config["route"]["routes"]]:
            route["group_wait"] = "1s"
        for receiver_config in config["receivers"]:
            for pagerduty in receiver_config.get("pagerduty_configs", []):
                pagerduty["url"] = receiver.url + "/pagerduty"  # instead of PagerDuty's
        config_text = _dump(config).replace("__dir__/", "{dir}/")
        files = {
            "slack-webhook-url": receiver.url + "/slack\n",
            "pagerduty-routing-key": "test-routing-key\n",
        }
        rules = {rule["alert"]: rule for rule in RULES}
        page = firing_alert(
            {"alertname": "ArbstreamFeedDown", "severity": "critical", "feed": "sge"},
            {
                "summary": "Feed sge is disconnected",
                "description": "Feed sge on feeds:9464 has had no subscribed WebSocket for 1m.",
                "runbook_url": rules["ArbstreamFeedDown"]["annotations"]["runbook_url"],
            },
        )
        ticket = firing_alert(
            {
                "alertname": "ArbstreamQuoteStale",
                "severity": "warning",
                "venue": "SGE",
                "instrument": "XAG",
            },
            {
                "summary": "SGE XAG quotes are stale",
                "description": "The latest SGE quote for XAG is 20s behind.",
                "runbook_url": rules["ArbstreamQuoteStale"]["annotations"]["runbook_url"],
            },
        )
        with AlertmanagerServer(config_text, files=files) as alertmanager:
            alertmanager.post_alerts([page, ticket])
            receiver.wait_for(
                lambda: (
                    all(receiver.received(p) for p in ("/slack", "/pagerduty"))
                    and len(receiver.received("/webhook")) == 2
                ),
                30,
                "a notification through every receiver" + alertmanager.log()[-3000:],
            )
        base = "https://docs.example.com/arbstream/"
        [pagerduty] = [r.body for r in receiver.received("/pagerduty")]
        assert pagerduty["routing_key"] == "test-routing-key"  # from the file, trimmed
        assert pagerduty["event_action"] == "trigger"
        assert pagerduty["payload"]["severity"] == "critical"
        assert pagerduty["payload"]["summary"] == "ArbstreamFeedDown: Feed sge is disconnected"
        assert pagerduty["links"] == [
            {"href": base + "docs/operations.md#arbstreamfeeddown", "text": "runbook"}
        ]
        [slack] = [r.body for r in receiver.received("/slack")]
        assert slack["channel"] == "#arbstream-alerts"
        [attachment] = slack["attachments"]
        assert attachment["title"] == "[FIRING] ArbstreamQuoteStale"
        assert "SGE XAG quotes are stale" in attachment["text"]
        assert f"Runbook: {base}docs/operations.md#arbstreamquotestale" in attachment["text"]
        hooks = {r.body["receiver"]: r.body for r in receiver.received("/webhook")}
        assert set(hooks) == {"arbstream-page", "arbstream-ticket"}
        assert hooks["arbstream-page"]["commonLabels"]["alertname"] == "ArbstreamFeedDown"


# ---- annotations and runbooks ----------------------------------------------------------


def slug(heading: str) -> str:
    """The anchor GitHub (and most Markdown renderers) give a heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def runbook_sections() -> dict[str, str]:
    """Heading -> text of each "###" section under docs/operations.md's "## Runbooks"."""
    text = OPERATIONS.read_text()
    match = re.search(r"^## Runbooks\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert match, 'docs/operations.md has no "## Runbooks" section'
    parts = re.split(r"^### (.+)\n", match.group(1), flags=re.M)
    return {parts[i].strip(): parts[i + 1] for i in range(1, len(parts), 2)}


def test_every_rule_has_annotations_and_its_own_runbook() -> None:
    sections = runbook_sections()
    anchors = {slug(heading): heading for heading in sections}
    assert len(anchors) == len(sections), "two runbook headings share an anchor"
    problems = []
    for rule in RULES:
        name, annotations = rule["alert"], rule.get("annotations") or {}
        for key in ("summary", "description", "runbook_url"):
            if not str(annotations.get(key, "")).strip():
                problems.append(f"{name}: no {key}")
        url = str(annotations.get("runbook_url", ""))
        path, _, anchor = url.partition("#")
        if url and (path != "docs/operations.md" or not (REPO / path).is_file()):
            problems.append(f"{name}: runbook_url {url!r} is not docs/operations.md#...")
        elif url and anchors.get(anchor) != name:
            problems.append(f"{name}: runbook_url {url!r} has no heading '### {name}'")
    assert not problems, "\n".join(problems)
    # and no runbook is left for an alert that is gone
    assert set(sections) == {rule["alert"] for rule in RULES}


@pytest.mark.parametrize("name", [rule["alert"] for rule in RULES])
def test_every_runbook_says_what_it_means_what_to_check_and_what_to_do(name: str) -> None:
    section = runbook_sections()[name]
    positions = [section.find(part) for part in RUNBOOK_PARTS]
    assert all(p >= 0 for p in positions), f"{name}: lacks one of {RUNBOOK_PARTS}"
    assert positions == sorted(positions), f"{name}: parts out of order"
    for part, start, end in zip(
        RUNBOOK_PARTS, positions, [*positions[1:], len(section)], strict=True
    ):
        assert len(section[start + len(part) : end].split()) >= 10, f"{name}: {part} is empty"


# ---- the binaries ----------------------------------------------------------------------


def test_bin_dir_missing_names_the_install_script(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr("helpers.alertmanager.TOOLS_BIN", tmp_path / "nothing")
    with pytest.raises(AssertionError, match=r"scripts/install-alertmanager\.sh"):
        alertmanager_bin_dir()
