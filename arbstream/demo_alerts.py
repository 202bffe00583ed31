"""``arbstream demo --alerts``: a Prometheus and an Alertmanager beside the demo, running
the shipped rules and routes, so the terminal and the page show what would page an
operator.

The demo starts them as children like the rest, from the shipped files in
``--deploy-dir`` (deploy/): ``prometheus/alerts.yml`` (every rule as shipped, except
that each ``for`` is divided by the demo's speed: the market runs that much faster, so
"stale for a minute" is a minute of the scenario), a Prometheus config scraping the
demo's worker, feeds and gateway on 127.0.0.1 with the shipped job names, and
``alertmanager/alertmanager.yml`` as shipped (but for its group_wait and group_interval,
divided by the speed too) with its webhook placeholder pointed at a receiver in the demo
process, which counts the notifications for the summary: the same
payload a team's relay, Slack or PagerDuty would get.

Binaries: ``prometheus`` and ``alertmanager`` from ``--prometheus-bin`` /
``--alertmanager-bin``, else PATH (``make prometheus-tools`` unpacks Debian's into
.tools/, and ``DEMO_ALERTS=1 make demo`` puts them on PATH).
"""

from __future__ import annotations

import math
import re
import shutil
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from arbstream.streams.errors import SetupError
from arbstream.supervisor import ChildProcess

#: The webhook URL in the shipped alertmanager.yml (a name that never resolves).
WEBHOOK_PLACEHOLDER = "http://alert-webhook.invalid/arbstream"
WEBHOOK_PATH = "/arbstream"
#: Scrape and evaluation interval of the demo's Prometheus (shipped: 5 s): the demo's
#: shortened `for`s are a few seconds.
INTERVAL = "2s"
#: How often the demo's terminal and its gateway ask the Alertmanager (shipped: 5 s).
ALERTS_EVERY_S = 2
_FOR = re.compile(r"^(\s+for: )(\d+)([smh])\b", re.M)
_GROUP_TIMING = re.compile(r"^(\s+group_(?:wait|interval): )(\d+)([smh])\b", re.M)
_UNIT_S = {"s": 1, "m": 60, "h": 3600}


@dataclass(frozen=True)
class AlertStack:
    """Where the shipped files and the binaries are, and the ports to serve on."""

    deploy_dir: Path
    prometheus_bin: Path
    alertmanager_bin: Path
    prometheus_port: int = 9090
    alertmanager_port: int = 9093

    @property
    def alertmanager_url(self) -> str:
        return f"http://127.0.0.1:{self.alertmanager_port}"

    @property
    def prometheus_url(self) -> str:
        return f"http://127.0.0.1:{self.prometheus_port}"


def find_binary(given: str | None, name: str, option: str) -> Path:
    """``given``, or ``name`` on PATH; SetupError naming ``option`` when neither is an
    executable."""
    found = shutil.which(given or name)
    if found is None:
        where = given or f"{name} on PATH"
        raise SetupError(
            f"{option}: no executable {where} (`make prometheus-tools` unpacks Debian's "
            "into .tools/; `DEMO_ALERTS=1 make demo` uses them)"
        )
    return Path(found)


def _divided(speed: float, least: int) -> Callable[[re.Match[str]], str]:
    """A substitution dividing a ``key: 5m`` duration by ``speed``, in whole seconds, at
    least ``least`` (0 stays 0)."""

    def shorten(match: re.Match[str]) -> str:
        seconds = int(match.group(2)) * _UNIT_S[match.group(3)]
        shortened = math.ceil(seconds / speed) if seconds else 0
        return f"{match.group(1)}{max(least, shortened) if seconds else 0}s"

    return shorten


def shortened_rules(text: str, speed: float) -> str:
    """alerts.yml with every rule's ``for`` divided by ``speed``, rounded up to whole
    seconds (0 stays 0); raises SetupError if a rule has no ``for`` to divide."""
    shortened, n = _FOR.subn(_divided(speed, 1), text)
    rules = text.count("- alert: ")
    if n != rules:
        raise SetupError(f"alerts.yml: {rules} rules but {n} `for:` lines to shorten")
    return shortened


def prometheus_config(rules_file: str, targets: Mapping[str, int], alertmanager_port: int) -> str:
    """The demo's Prometheus config (JSON, which YAML reads as it is): the shipped job
    names on 127.0.0.1 ports, the rules file beside it, the demo's Alertmanager."""
    config = {
        "global": {
            "scrape_interval": INTERVAL,
            "evaluation_interval": INTERVAL,
            "external_labels": {"stack": "arbstream"},  # the inhibitions compare it
        },
        "rule_files": [rules_file],
        "alerting": {
            "alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{alertmanager_port}"]}]}]
        },
        "scrape_configs": [
            {"job_name": job, "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}
            for job, port in targets.items()
        ],
    }
    return orjson.dumps(config, option=orjson.OPT_INDENT_2).decode()


def alertmanager_config(text: str, webhook_url: str, speed: float) -> str:
    """The shipped alertmanager.yml with its webhook placeholder replaced, and its
    group_wait and group_interval divided by ``speed`` (at least 1 s)."""
    if WEBHOOK_PLACEHOLDER not in text:
        raise SetupError(f"alertmanager.yml: no webhook {WEBHOOK_PLACEHOLDER} to point at the demo")
    return _GROUP_TIMING.sub(_divided(speed, 1), text.replace(WEBHOOK_PLACEHOLDER, webhook_url))


class Webhook:
    """The other end of the Alertmanager's webhook, in the demo process: counts the
    alerts notified, by receiver and status."""

    def __init__(self) -> None:
        self.notified: Counter[str] = Counter()  # "page firing", "ticket resolved", ...
        self.names: Counter[str] = Counter()  # alertname -> firing notifications
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post(WEBHOOK_PATH, self._receive)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}{WEBHOOK_PATH}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _receive(self, request: web.Request) -> web.Response:
        try:
            body: Any = orjson.loads(await request.read())
            receiver = str(body["receiver"])
            for alert in body["alerts"]:
                self.notified[f"{receiver} {alert['status']}"] += 1
                if alert["status"] == "firing":
                    self.names[str(alert["labels"]["alertname"])] += 1
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return web.Response(status=400, text="not an Alertmanager webhook payload\n")
        return web.json_response({"ok": True})

    def summary(self) -> dict[str, Any]:
        """``notified``: alerts per "receiver status"; ``notified_names``: firing
        notifications per alert name."""
        return {
            "notified": dict(sorted(self.notified.items())),
            "notified_names": dict(sorted(self.names.items())),
        }


def start_alerting(
    stack: AlertStack,
    speed: float,
    targets: Mapping[str, int],
    webhook_url: str,
    log_dir: Path,
    env: Mapping[str, str],
) -> list[ChildProcess]:
    """Write the demo's configs under ``log_dir/alerting`` (emptied first) and start the
    Alertmanager, then Prometheus; raises SetupError when a shipped file is missing."""
    work = (log_dir / "alerting").resolve()  # the children start in other directories
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        rules = (stack.deploy_dir / "prometheus" / "alerts.yml").read_text()
        routes = (stack.deploy_dir / "alertmanager" / "alertmanager.yml").read_text()
    except OSError as exc:
        raise SetupError(f"--deploy-dir: {exc.filename}: {exc.strerror}") from None
    (work / "alerts.yml").write_text(shortened_rules(rules, speed))
    (work / "prometheus.yml").write_text(
        prometheus_config("alerts.yml", targets, stack.alertmanager_port)
    )
    (work / "alertmanager.yml").write_text(alertmanager_config(routes, webhook_url, speed))
    # Debian's build reads its notification templates from usr/share/prometheus/
    # alertmanager under the directory it starts in (scripts/install-alertmanager.sh):
    # the directory above usr/bin, "/" for an installed package.
    root = stack.alertmanager_bin.resolve().parents[2]
    commands = {
        "alertmanager": (
            [
                str(stack.alertmanager_bin),
                f"--config.file={work / 'alertmanager.yml'}",
                f"--storage.path={work / 'alertmanager-data'}",
                f"--web.listen-address=127.0.0.1:{stack.alertmanager_port}",
                "--cluster.listen-address=",
            ],
            root,
        ),
        "prometheus": (
            [
                str(stack.prometheus_bin),
                f"--config.file={work / 'prometheus.yml'}",
                f"--storage.tsdb.path={work / 'prometheus-data'}",
                f"--web.listen-address=127.0.0.1:{stack.prometheus_port}",
            ],
            work,
        ),
    }
    children: list[ChildProcess] = []
    try:
        for name, (args, cwd) in commands.items():
            children.append(
                ChildProcess(
                    args,
                    log_dir / f"{name}.log",
                    env=env,
                    name=name,
                    own_session=True,
                    parent_death=True,
                    truncate=True,
                    cwd=cwd,
                )
            )
    except OSError:
        for child in children:
            child.kill()
        raise
    return children
