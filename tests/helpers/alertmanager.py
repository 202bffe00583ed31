"""Test helpers around a real Alertmanager: its binaries, a throwaway server, and an HTTP
receiver standing in for whatever the Alertmanager notifies.

- ``alertmanager_bin_dir()``: ``.tools/alertmanager/usr/bin`` (``scripts/install-
  alertmanager.sh`` unpacks Debian's package there), holding ``alertmanager`` and
  ``amtool``. Missing binaries FAIL the test with an AssertionError naming the script;
  they never skip it.
- ``amtool(*args)``: run amtool, get its ``CompletedProcess``.
- ``AlertmanagerServer(config_text)``: a context manager running ``alertmanager`` with that
  config on a free 127.0.0.1 port; ``alerts()``, ``post_alerts()``.
- ``HttpReceiver()``: a context manager serving POSTs on a free 127.0.0.1 port and keeping
  their JSON bodies, by path: the webhook's (and a Slack's or PagerDuty's) other end.
- ``CONFIG``, ``WEBHOOK_PLACEHOLDER``: the shipped config and the webhook URL in it that a
  test replaces with its receiver's.

Every timeout is scaled by ``ARBSTREAM_TIMEOUT_FACTOR`` (see ``helpers.kafka.scaled``).
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from helpers.kafka import free_port, scaled
from helpers.paths import REPO
from helpers.server import ServerProcess

#: Where scripts/install-alertmanager.sh unpacks Debian's package. The server runs with
#: this as its working directory: Debian's build reads its default notification
#: templates from usr/share/prometheus/alertmanager/ relative to it (the script says why).
TOOLS_ROOT = REPO / ".tools" / "alertmanager"
TOOLS_BIN = TOOLS_ROOT / "usr" / "bin"
INSTALL_SCRIPT = "scripts/install-alertmanager.sh"

CONFIG = REPO / "deploy" / "alertmanager" / "alertmanager.yml"
#: The shipped webhook URL (a name under .invalid, which never resolves): tests replace it.
WEBHOOK_PLACEHOLDER = "http://alert-webhook.invalid/arbstream"


def alertmanager_bin_dir() -> Path:
    """The directory holding both ``alertmanager`` and ``amtool``: the repo's
    ``.tools/alertmanager/usr/bin`` only (the Debian build the tests are written against;
    the server needs the templates unpacked beside it)."""
    missing = [t for t in ("alertmanager", "amtool") if not _is_executable(TOOLS_BIN / t)]
    if missing:
        raise AssertionError(
            f"{' and '.join(missing)} not found in {TOOLS_BIN}: run `{INSTALL_SCRIPT}` "
            "(unpacks Debian's prometheus-alertmanager package into .tools/, starts no "
            "service; `make prometheus-tools` runs it)"
        )
    return TOOLS_BIN


def _is_executable(path: Path) -> bool:
    return path.is_file() and path.stat().st_mode & 0o111 != 0


def amtool(*args: str | Path, timeout_s: float = 60.0) -> subprocess.CompletedProcess[str]:
    """``amtool ARGS...``; its status, stdout and stderr, whatever the status."""
    return subprocess.run(
        [str(alertmanager_bin_dir() / "amtool"), *map(str, args)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=scaled(timeout_s),
        check=False,
        cwd=REPO,
    )


def amtool_version() -> tuple[int, int]:
    """(major, minor) of the amtool in use, e.g. (0, 25)."""
    proc = amtool("--version")
    words = (proc.stdout + proc.stderr).split()
    # "amtool, version 0.25.0 (branch: ...)"
    version = words[words.index("version") + 1]
    major, minor = version.split(".")[:2]
    return int(major), int(minor)


class AlertmanagerError(RuntimeError):
    """The Alertmanager answered an API request with an error."""


class AlertmanagerServer(ServerProcess):
    """A throwaway Alertmanager with ``config_text`` as its configuration.

    ``files`` are written beside the config (templates, or secrets a receiver reads with
    ``*_file``: ``{dir}`` in ``config_text`` is replaced by that directory). ``__enter__``
    returns once ``/-/ready`` answers 200; ``__exit__`` stops it with SIGTERM (SIGKILL
    after a timeout) and deletes its data. No clustering: one instance, no gossip port.
    """

    NAME = "alertmanager"

    def __init__(
        self,
        config_text: str,
        *,
        files: dict[str, str] | None = None,
        port: int = 0,
        start_timeout_s: float = 30.0,
        stop_timeout_s: float = 20.0,
    ) -> None:
        super().__init__(port=port, start_timeout_s=start_timeout_s, stop_timeout_s=stop_timeout_s)
        self.config_text = config_text
        self.files = dict(files or {})

    def __enter__(self) -> AlertmanagerServer:
        binary = alertmanager_bin_dir() / "alertmanager"
        root = self.workdir()
        for name, text in self.files.items():
            (root / name).write_text(text)
        config = root / "alertmanager.yml"
        config.write_text(self.config_text.replace("{dir}", str(root)))
        args = [
            str(binary),
            f"--config.file={config}",
            f"--storage.path={root / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--cluster.listen-address=",
            "--log.level=debug",  # each notification and inhibition, for failures
        ]
        # (its templates are found relative to .tools/alertmanager: the install script)
        self.launch(args, root, cwd=TOOLS_ROOT)
        return self

    # ---- HTTP API (v2) --------------------------------------------------------------

    def alerts(self) -> list[dict[str, Any]]:
        """``GET /api/v2/alerts``: every alert it holds, silenced and inhibited ones too,
        each with ``status.state`` (active, suppressed) and ``status.inhibitedBy``."""
        alerts: list[dict[str, Any]] = self._request("GET", "/api/v2/alerts")
        return alerts

    def post_alerts(self, alerts: list[dict[str, Any]]) -> None:
        """``POST /api/v2/alerts``, as Prometheus sends them."""
        self._request("POST", "/api/v2/alerts", alerts)

    def silence(self, alertname: str, hours: float = 1.0) -> None:
        """``POST /api/v2/silences``: silence every alert of that name from now on."""
        start = time.time()
        self._request(
            "POST",
            "/api/v2/silences",
            {
                "matchers": [{"name": "alertname", "value": alertname, "isRegex": False}],
                "startsAt": _rfc3339(start),
                "endsAt": _rfc3339(start + hours * 3600),
                "createdBy": "arbstream tests",
                "comment": "silenced by a test",
            },
        )

    def _request(self, method: str, path: str, body: object = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.url}{path}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=scaled(10)) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            raise AlertmanagerError(
                f"{method} {path}: HTTP {exc.code}: {exc.read()[:500]!r}"
            ) from exc
        return json.loads(raw) if raw.strip() else None


def _rfc3339(epoch_s: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch_s))


@dataclass(frozen=True)
class Received:
    """One POST an ``HttpReceiver`` answered."""

    path: str
    body: Any  # the parsed JSON
    at: float  # time.monotonic() on arrival


@dataclass(frozen=True)
class Notified:
    """One alert of one webhook notification (Alertmanager's webhook JSON, version 4)."""

    receiver: str
    status: str  # the alert's own: "firing" or "resolved"
    labels: dict[str, str]
    annotations: dict[str, str]
    group_labels: dict[str, str]  # the labels of its aggregation group (route group_by)
    at: float


class HttpReceiver:
    """An HTTP server on a free 127.0.0.1 port that answers every POST with 200 and keeps
    its JSON body: what a webhook relay, Slack or PagerDuty would get."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._received: list[Received] = []
        self._lock = threading.Lock()
        received, lock = self._received, self._lock

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = {"unparsed": raw.decode(errors="replace")}
                with lock:
                    received.append(Received(self.path, body, time.monotonic()))
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"ok": true}')  # (Slack and Telegram expect a body)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # a test's output is no place for an access log

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> HttpReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(scaled(10))

    def received(self, path: str | None = None, start: int = 0) -> list[Received]:
        """Every POST so far from the ``start``-th on (to ``path`` only, if given), in
        order of arrival."""
        with self._lock:
            return [r for r in self._received[start:] if path is None or r.path == path]

    def notified(self, path: str | None = None, start: int = 0) -> list[Notified]:
        """The alerts of every webhook notification so far (from the ``start``-th POST
        on), one entry per alert."""
        return [
            Notified(
                receiver=r.body["receiver"],
                status=alert["status"],
                labels=alert["labels"],
                annotations=alert["annotations"],
                group_labels=r.body["groupLabels"],
                at=r.at,
            )
            for r in self.received(path, start)
            for alert in r.body.get("alerts", [])
        ]

    def wait_for(
        self, condition: Callable[[], bool], timeout_s: float, what: str, every_s: float = 0.1
    ) -> None:
        """Poll ``condition`` until it holds; fail after ``timeout_s`` (scaled), listing
        what arrived."""
        deadline = time.monotonic() + scaled(timeout_s)
        while not condition():
            if time.monotonic() > deadline:
                got = [(r.path, _summary(r.body)) for r in self.received()]
                raise AssertionError(
                    f"timed out after {scaled(timeout_s):.0f} s waiting for {what}; received: {got}"
                )
            time.sleep(every_s)


def _summary(body: Any) -> object:
    """A notification in short: its receiver and each alert's status and labels."""
    if isinstance(body, dict) and "alerts" in body:
        return [body.get("receiver"), [(a["status"], a["labels"]) for a in body["alerts"]]]
    return body


def firing_alert(
    labels: dict[str, str], annotations: dict[str, str], generator_url: str = ""
) -> dict[str, Any]:
    """An alert as Prometheus posts it while it fires (no end time)."""
    return {"labels": labels, "annotations": annotations, "generatorURL": generator_url}
