"""Test helpers around a real Prometheus: find its binaries, run a throwaway server.

- ``prometheus_bin_dir()``: the directory with ``prometheus`` and ``promtool`` (the repo's
  ``.tools/prometheus/usr/bin`` from ``scripts/install-prometheus.sh``, else ``PATH``).
  Missing binaries FAIL the test with an AssertionError naming the install script; they
  never skip it.
- ``PrometheusServer(config_text)``: a context manager running ``prometheus`` with that
  config on a free 127.0.0.1 port, an empty TSDB in a temp dir; ``query(expr)``,
  ``targets()``, ``rules()``, ``alerts()``, ``wait_for_series(expr)``.
- ``alert_exprs(path)``: ``(alert name, expr)`` of every alerting rule in a rules file.

Every timeout is scaled by ``ARBSTREAM_TIMEOUT_FACTOR`` (see ``kafka_helpers.scaled``).
"""

from __future__ import annotations

import json
import shutil
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from helpers.kafka import scaled
from helpers.server import ServerProcess

REPO = Path(__file__).resolve().parents[2]
TOOLS_BIN = REPO / ".tools" / "prometheus" / "usr" / "bin"
INSTALL_SCRIPT = "scripts/install-prometheus.sh"


def prometheus_bin_dir() -> Path:
    """The directory holding both ``prometheus`` and ``promtool``.

    Prefers the repo's ``.tools/prometheus/usr/bin`` (the pinned Debian build the rule tests
    are written against), then a directory on ``PATH``.
    """
    candidates = [TOOLS_BIN]
    on_path = shutil.which("promtool")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    for directory in candidates:
        if all(_is_executable(directory / tool) for tool in ("prometheus", "promtool")):
            return directory
    raise AssertionError(
        "prometheus/promtool not found (looked in "
        f"{', '.join(str(c) for c in candidates)} and PATH): run `{INSTALL_SCRIPT}` "
        "(unpacks Debian's prometheus package into .tools/, starts no service)"
    )


def _is_executable(path: Path) -> bool:
    return path.is_file() and path.stat().st_mode & 0o111 != 0


def alert_exprs(path: Path | str) -> list[tuple[str, str]]:
    """``(alert name, expr)`` of every alerting rule in the rules file ``path``, in order.

    Recording rules are left out."""
    document = YAML(typ="safe").load(Path(path).read_text())
    pairs: list[tuple[str, str]] = []
    for group in document.get("groups") or []:
        for rule in group.get("rules") or []:
            if "alert" in rule:
                pairs.append((str(rule["alert"]), str(rule["expr"])))
    return pairs


class PrometheusError(RuntimeError):
    """Prometheus answered an API request with an error."""


class PrometheusServer(ServerProcess):
    """A throwaway Prometheus server with ``config_text`` as its configuration.

    ``files`` are written beside the config (e.g. ``{"alerts.yml": ...}`` for
    ``rule_files: [alerts.yml]``, which Prometheus resolves relative to the config file).
    ``__enter__`` returns once ``/-/ready`` answers 200; ``__exit__`` stops the server with
    SIGTERM (SIGKILL after a timeout) and deletes its data. ``port`` (0 = a free one) is
    where it listens on 127.0.0.1; ``{port}`` in ``config_text`` is replaced by it, so a
    config can scrape the server itself.
    """

    NAME = "prometheus"

    def __init__(
        self,
        config_text: str,
        *,
        files: Mapping[str, str] | None = None,
        port: int = 0,
        start_timeout_s: float = 30.0,
        stop_timeout_s: float = 20.0,
    ) -> None:
        super().__init__(port=port, start_timeout_s=start_timeout_s, stop_timeout_s=stop_timeout_s)
        self.config_text = config_text.replace("{port}", str(self.port))
        self.files = dict(files or {})

    # ---- lifecycle ------------------------------------------------------------------

    def __enter__(self) -> PrometheusServer:
        binary = prometheus_bin_dir() / "prometheus"
        root = self.workdir()
        config = root / "prometheus.yml"
        config.write_text(self.config_text)
        for name, text in self.files.items():
            (root / name).write_text(text)
        args = [
            str(binary),
            f"--config.file={config}",
            f"--storage.tsdb.path={root / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
        ]
        self.launch(args, root, cwd=root)
        return self

    # ---- HTTP API -------------------------------------------------------------------

    def query(self, expr: str, at: float | None = None) -> dict[str, Any]:
        """``GET /api/v1/query``: the parsed JSON answer (``{"status": "success",
        "data": {"resultType": ..., "result": [...]}}``).

        Raises ``PrometheusError`` with Prometheus's error type and text when it rejects
        the query (e.g. a syntax error)."""
        params = {"query": expr}
        if at is not None:
            params["time"] = repr(at)
        return self._get("/api/v1/query", params)

    def targets(self) -> dict[str, Any]:
        """``GET /api/v1/targets``: its ``data`` (``activeTargets``, ``droppedTargets``)."""
        data: dict[str, Any] = self._get("/api/v1/targets")["data"]
        return data

    def rules(self) -> list[dict[str, Any]]:
        """``GET /api/v1/rules``: the loaded rule groups (each with its ``rules``)."""
        groups: list[dict[str, Any]] = self._get("/api/v1/rules")["data"]["groups"]
        return groups

    def alerts(self) -> list[dict[str, Any]]:
        """``GET /api/v1/alerts``: the alerts now pending or firing, each with its
        ``labels``, ``annotations`` and ``state``."""
        alerts: list[dict[str, Any]] = self._get("/api/v1/alerts")["data"]["alerts"]
        return alerts

    def wait_for_series(self, expr: str, timeout_s: float = 30.0) -> list[dict[str, Any]]:
        """Poll ``query(expr)`` until it returns at least one series; return them.

        Use it to wait for the first scrape or rule evaluation."""
        deadline = time.monotonic() + scaled(timeout_s)
        while True:
            result: list[dict[str, Any]] = self.query(expr)["data"]["result"]
            if result:
                return result
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"no series for {expr!r} within {scaled(timeout_s):.0f} s; "
                    f"targets: {json.dumps(self.targets().get('activeTargets'))}"
                )
            time.sleep(0.1)

    def _get(self, path: str, params: Mapping[str, str] | None = None) -> dict[str, Any]:
        url = f"{self.url}{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(url, timeout=scaled(10)) as response:
                body = response.read()
        except urllib.error.HTTPError as exc:
            # the API answers errors (400 bad_data, 422 execution, ...) with a JSON body
            body = exc.read()
            if not body:
                raise PrometheusError(f"GET {path} failed: HTTP {exc.code}") from exc
        try:
            answer: dict[str, Any] = json.loads(body)
        except ValueError as exc:
            raise PrometheusError(f"GET {path}: not JSON: {body[:500]!r}") from exc
        if answer.get("status") != "success":
            raise PrometheusError(
                f"GET {path} {dict(params or {})}: {answer.get('errorType')}: {answer.get('error')}"
            )
        return answer
