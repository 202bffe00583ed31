"""``arbstream feed``: config errors stop it before any connection; health endpoints."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from helpers.http import get_json
from helpers.kafka import free_port, scaled
from helpers.venue_server import VenueServer

VENUES = '[venues.X]\ncurrency = "USD"\nunit = "oz"\n'


def _feed(config: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "arbstream.cli", "feed", "--config", str(config), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


@pytest.mark.parametrize(
    ("feeds", "args", "named"),
    [
        (
            '[feeds.fx]\nprotocol = "massive"\nurl = "ws://127.0.0.1:1/forex"\n'
            'symbols = { "USD/CNY" = "USDCNY" }\napi_key_env = "ARBSTREAM_TEST_UNSET_KEY"\n',
            [],
            "feeds.fx.api_key_env: environment variable ARBSTREAM_TEST_UNSET_KEY is not set",
        ),
        (
            '[feeds.x]\nprotocol = "native"\nurl = "ws://127.0.0.1:1/x"\nvenue = "X"\n',
            ["--only", "y"],
            "--only y: no such feed",
        ),
        ("", [], "feeds: no [feeds.NAME] table"),
        (
            '[feeds.x]\nprotocol = "native"\nurl = "ws://127.0.0.1:1/x"\nvenue = "Y"\n',
            [],
            "feeds.x.venue: unknown venue 'Y'",
        ),
    ],
    ids=["unset key variable", "unknown --only", "no feeds", "unknown venue"],
)
def test_config_errors_name_the_key_and_exit_2(
    tmp_path: Path, feeds: str, args: list[str], named: str
) -> None:
    config = tmp_path / "c.toml"
    config.write_text(VENUES + feeds)
    env = {k: v for k, v in os.environ.items() if k != "ARBSTREAM_TEST_UNSET_KEY"}
    proc = _feed(config, *args, env=env)
    out, _ = proc.communicate(timeout=scaled(30))
    assert proc.returncode == 2, out
    assert named in out


def _get(port: int, path: str) -> tuple[int, Any]:
    """(status, JSON body), or (0, None) while nothing answers."""
    try:
        return get_json(f"http://127.0.0.1:{port}{path}", 5)
    except OSError:
        return 0, None


def test_readyz_follows_the_connections_and_sigterm_stops_cleanly(
    tmp_path: Path, kafka_bootstrap: str
) -> None:
    server = VenueServer(free_port())
    config = tmp_path / "c.toml"
    config.write_text(
        VENUES
        + f'[feeds.x]\nprotocol = "native"\nurl = "{server.url}"\nvenue = "X"\n'
        + "idle_timeout_s = 5.0\nbackoff_max_s = 0.5\n"
    )
    port = free_port()
    env = {
        **os.environ,
        "ARBSTREAM_BROKER": f"kafka://{kafka_bootstrap}",
        "ARBSTREAM_FEED_METRICS_PORT": str(port),
    }

    async def until(status: int) -> Any:
        deadline = time.monotonic() + scaled(20)
        while time.monotonic() < deadline:
            got, body = await asyncio.to_thread(_get, port, "/readyz")
            if got == status:
                return body
            await asyncio.sleep(0.1)
        raise AssertionError(f"/readyz never answered {status}")

    async def run() -> None:
        proc = _feed(config, env=env)
        try:
            # no venue yet: alive, not ready
            body = await until(503)
            assert body["ready"] is False and body["feeds"] == {"x": False}
            assert await asyncio.to_thread(_get, port, "/healthz") == (200, {"status": "ok"})
            await server.start()
            assert await until(200) == {"ready": True, "feeds": {"x": True}, "kafka": True}
            await server.stop_listening()
            await until(503)
        finally:
            proc.send_signal(signal.SIGTERM)
            out, _ = await asyncio.to_thread(proc.communicate, timeout=scaled(30))
            await server.close()
        assert proc.returncode == 0, out
        assert "arbstream feeds connected: x" in out and "kafka: " in out

    asyncio.run(run())
