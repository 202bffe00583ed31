"""The gateway's security, on the real gateway process with a real broker: no open bind
by default, tokens on both transports (401 before any upgrade or stream), Origin checks
(403), TLS only under TLS, a token removed on SIGHUP closing its connections (1008), the
connection caps (1013 / 503), failed authentications rate-limited (429), and nothing
logged that holds a token."""

from __future__ import annotations

import asyncio
import os
import signal
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import websockets
from jsonschema import Draft202012Validator

from helpers.gateway import GatewayProcess, Site, quotes_site
from helpers.http import get
from helpers.kafka import free_port, scaled, wait_for
from helpers.schemas import load, registry


@pytest.fixture(scope="module")
def site(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Site:
    return quotes_site(kafka_bootstrap, tmp_path_factory.mktemp("security"))


def start_gateway(site: Site, log: Path, **env: str) -> GatewayProcess:
    g = GatewayProcess(
        site.config,
        site.bootstrap,
        log,
        **{
            "ARBSTREAM_GATEWAY_TOKENS_FILE": str(site.tokens_file),
            "ARBSTREAM_GATEWAY_ORIGINS": "https://desk.example.com",
            **env,
        },
    )
    g.wait_ready()
    return g


@pytest.fixture
def gateway(site: Site, tmp_path: Path) -> Iterator[GatewayProcess]:
    g = start_gateway(
        site,
        tmp_path / "gateway.log",
        ARBSTREAM_GATEWAY_MAX_CLIENTS_PER_TOKEN="2",
        ARBSTREAM_GATEWAY_MAX_CLIENTS="3",
    )
    try:
        yield g
    finally:
        assert g.stop() == 0
    log = (tmp_path / "gateway.log").read_text()
    for token in site.tokens.values():
        assert token not in log, "a token in the gateway's log"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def ws_status(
    url: str, headers: dict[str, str] | None = None, origin: str | None = None, **kw: Any
) -> tuple[int, int]:
    """(status of the handshake, records in the snapshot); 0 records when refused."""
    try:
        async with websockets.connect(
            url, additional_headers=headers, origin=origin, open_timeout=scaled(10), **kw
        ) as ws:
            await ws.send('{"op": "subscribe"}')
            records = 0
            while True:
                message = orjson.loads(await asyncio.wait_for(ws.recv(), scaled(10)))
                records += "record" in message
                if message.get("type") == "snapshot" and message.get("phase") == "end":
                    return 101, records
    except websockets.InvalidStatus as refused:
        return refused.response.status_code, 0


async def sse_status(url: str, headers: dict[str, str] | None = None) -> int:
    """The status of an SSE request; a 200 must go on to a subscribed event."""
    async with aiohttp.ClientSession() as session, session.get(url, headers=headers) as r:
        if r.status == 200:
            first = await asyncio.wait_for(r.content.readline(), scaled(10))
            assert first == b"event: subscribed\n", first
        return r.status


def metric(gateway: GatewayProcess, reason: str) -> float:
    prefix = f'arbstream_gateway_refused_total{{reason="{reason}"}} '
    for line in gateway.get("/metrics")[1].decode().splitlines():
        if line.startswith(prefix):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no refused count for {reason}")


def test_an_open_bind_needs_tokens_or_an_explicit_open_mode(site: Site, tmp_path: Path) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("ARBSTREAM_GATEWAY")},
        "ARBSTREAM_BROKER": f"kafka://{site.bootstrap}",
        "ARBSTREAM_GATEWAY_HOST": "0.0.0.0",
        "ARBSTREAM_GATEWAY_PORT": str(free_port()),
    }
    command = [sys.executable, "-m", "arbstream.cli", "gateway", "--config", str(site.config)]
    refused = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=scaled(30), check=False
    )
    lines = [line for line in refused.stderr.splitlines() if line.strip()]
    assert refused.returncode == 2, refused.stderr
    assert len(lines) == 1 and "ARBSTREAM_GATEWAY_TOKENS_FILE" in lines[0], lines
    assert "ARBSTREAM_GATEWAY_AUTH=none" in lines[0] and "arbstream gateway token" in lines[0]
    # open on purpose: it serves, and says so when it starts
    log = tmp_path / "open.log"
    g = GatewayProcess(
        site.config,
        site.bootstrap,
        log,
        ARBSTREAM_GATEWAY_HOST="0.0.0.0",
        ARBSTREAM_GATEWAY_AUTH="none",
    )
    try:
        g.wait_ready()
        assert asyncio.run(ws_status(g.url))[0] == 101
    finally:
        assert g.stop() == 0
    assert "ARBSTREAM_GATEWAY_AUTH=none: serving every signal" in log.read_text()


def test_both_transports_want_a_known_token(site: Site, gateway: GatewayProcess) -> None:
    url, events = gateway.url, f"{gateway.http}/events?types=quote"
    assert asyncio.run(ws_status(url)) == (401, 0)
    assert asyncio.run(ws_status(url, bearer("not-a-token"))) == (401, 0)
    assert asyncio.run(ws_status(url, {"Authorization": "Basic eDp5"})) == (401, 0)
    status, records = asyncio.run(ws_status(url, bearer(site.tokens["desk"])))
    assert status == 101 and records >= 5  # each venue's latest quote
    assert asyncio.run(sse_status(events)) == 401
    assert asyncio.run(sse_status(events, bearer("nope"))) == 401
    assert asyncio.run(sse_status(events, bearer(site.tokens["ops"]))) == 200
    # the probes and Prometheus stay open
    for path in ("/healthz", "/readyz", "/metrics"):
        assert gateway.get(path)[0] == 200, path
    assert metric(gateway, "no_credentials") == 2
    assert metric(gateway, "bad_token") == 3


def test_a_foreign_origin_is_refused(site: Site, gateway: GatewayProcess) -> None:
    token = bearer(site.tokens["desk"])
    own = f"http://127.0.0.1:{gateway.port}"
    assert asyncio.run(ws_status(gateway.url, token, origin="https://evil.example"))[0] == 403
    assert asyncio.run(ws_status(gateway.url, token, origin=own))[0] == 101
    assert asyncio.run(ws_status(gateway.url, token, origin="https://desk.example.com"))[0] == 101
    # (refused before the token is even looked at: a page has no token to show)
    assert asyncio.run(ws_status(gateway.url, origin="https://evil.example"))[0] == 403
    assert metric(gateway, "origin") == 2


def test_the_connection_caps(site: Site, gateway: GatewayProcess) -> None:
    """Two connections per client, three in all (the fixture's settings)."""

    async def run() -> tuple[int | None, int]:
        desk, ops = bearer(site.tokens["desk"]), bearer(site.tokens["ops"])
        connect = websockets.connect
        async with (
            connect(gateway.url, additional_headers=desk),
            connect(gateway.url, additional_headers=desk),
        ):
            # a third of desk's: let in, then closed 1013 with the reason
            async with connect(gateway.url, additional_headers=desk) as third:
                with pytest.raises(websockets.ConnectionClosed) as closed:
                    await asyncio.wait_for(third.recv(), scaled(10))
            code = closed.value.rcvd.code if closed.value.rcvd else None
            async with connect(gateway.url, additional_headers=ops):
                # the gateway is full: refused before the upgrade
                return code, (await ws_status(gateway.url, ops))[0]

    code, full = asyncio.run(run())
    assert code == 1013
    assert full == 503
    assert metric(gateway, "client_full") == 1
    assert metric(gateway, "full") == 1


def test_failed_authentications_are_rate_limited(site: Site, gateway: GatewayProcess) -> None:
    for _ in range(10):
        assert asyncio.run(ws_status(gateway.url, bearer("guess")))[0] == 401
    # from this address, even a good token waits out the window
    assert asyncio.run(ws_status(gateway.url, bearer(site.tokens["desk"])))[0] == 429
    assert metric(gateway, "rate_limited") == 1


def test_a_token_removed_on_sighup_closes_its_connections(site: Site, tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text(site.tokens_file.read_text())
    g = start_gateway(site, tmp_path / "gateway.log", ARBSTREAM_GATEWAY_TOKENS_FILE=str(tokens))

    async def run() -> tuple[int | None, int]:
        desk, ops = bearer(site.tokens["desk"]), bearer(site.tokens["ops"])
        async with (
            websockets.connect(g.url, additional_headers=desk) as d,
            websockets.connect(g.url, additional_headers=ops) as o,
        ):
            for ws in (d, o):
                await ws.send('{"op": "subscribe"}')
            # ops is removed from the file, and the gateway told
            tokens.write_text(
                "\n".join(x for x in tokens.read_text().splitlines() if not x.startswith("ops "))
                + "\n"
            )
            os.kill(g.proc.pid, signal.SIGHUP)
            with pytest.raises(websockets.ConnectionClosed) as closed:
                while True:
                    await asyncio.wait_for(o.recv(), scaled(10))
            # desk goes on: a venues message comes every second
            while (
                orjson.loads(await asyncio.wait_for(d.recv(), scaled(10))).get("type") != "venues"
            ):
                pass
            code = closed.value.rcvd.code if closed.value.rcvd else None
            return code, (await ws_status(g.url, ops))[0]

    try:
        code, again = asyncio.run(run())
    finally:
        assert g.stop() == 0
    assert code == 1008
    assert again == 401
    assert "tokens reloaded" in (tmp_path / "gateway.log").read_text()


def test_under_tls_it_serves_https_and_wss_only(
    site: Site, tmp_path: Path, tls_files: tuple[Path, Path, Path]
) -> None:
    ca, cert, key = tls_files
    g = GatewayProcess(
        site.config,
        site.bootstrap,
        tmp_path / "gateway.log",
        ARBSTREAM_GATEWAY_TOKENS_FILE=str(site.tokens_file),
        ARBSTREAM_GATEWAY_TLS_CERT=str(cert),
        ARBSTREAM_GATEWAY_TLS_KEY=str(key),
    )
    context = ssl.create_default_context(cafile=str(ca))
    https = f"https://127.0.0.1:{g.port}"
    try:
        wait_for(lambda: _status(f"{https}/readyz", context) == 200, 60, "the gateway over https")
        # plain http gets no answer from a TLS listener
        with pytest.raises((urllib.error.URLError, ConnectionError, OSError)):
            get(f"http://127.0.0.1:{g.port}/healthz", 5)
        wss = f"wss://127.0.0.1:{g.port}/ws"
        status, records = asyncio.run(ws_status(wss, bearer(site.tokens["desk"]), ssl=context))
        assert status == 101 and records >= 5
        assert asyncio.run(ws_status(wss, ssl=context))[0] == 401
    finally:
        assert g.stop() == 0


def _status(url: str, context: ssl.SSLContext) -> int:
    try:
        return get(url, 5, context=context)[0]
    except OSError:
        return 0


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """A CA, and a server certificate for 127.0.0.1 it signed, made with openssl."""
    d = tmp_path_factory.mktemp("tls")

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    for name in ("ca", "server"):
        openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                "-out", str(d / f"{name}.key"))  # fmt: skip
    openssl("req", "-x509", "-new", "-key", str(d / "ca.key"), "-subj", "/CN=gateway test CA",
            "-days", "2", "-out", str(d / "ca.pem"))  # fmt: skip
    openssl("req", "-new", "-key", str(d / "server.key"), "-subj", "/CN=127.0.0.1",
            "-out", str(d / "server.csr"))  # fmt: skip
    (d / "ext").write_text("subjectAltName=IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", str(d / "server.csr"), "-CA", str(d / "ca.pem"),
            "-CAkey", str(d / "ca.key"), "-CAcreateserial", "-days", "2",
            "-extfile", str(d / "ext"), "-out", str(d / "server.pem"))  # fmt: skip
    return d / "ca.pem", d / "server.pem", d / "server.key"


def test_the_sign_in_exchanges_a_token_for_a_session(site: Site, gateway: GatewayProcess) -> None:
    """POST /session: a cookie (HttpOnly, SameSite=Strict, no Secure without TLS) that
    /ws and /events take; DELETE ends it. Every body as its schema says."""
    validator = Draft202012Validator(load("gateway-session.schema.json"), registry=registry())

    async def run() -> list[tuple[str, int, Any]]:
        seen: list[tuple[str, int, Any]] = []
        own = {"Origin": f"http://127.0.0.1:{gateway.port}"}
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:

            async def call(method: str, body: Any = None, **kw: Any) -> aiohttp.ClientResponse:
                r = await http.request(method, f"{gateway.http}/session", json=body, **kw)
                json = r.content_type == "application/json"
                seen.append((method, r.status, await r.json() if json else await r.text()))
                return r

            await call("GET")
            await call("POST", {"token": "wrong"}, headers=own)
            signed = await call("POST", {"token": site.tokens["desk"]}, headers=own)
            cookie = signed.headers["Set-Cookie"]
            assert "HttpOnly" in cookie and "SameSite=Strict" in cookie, cookie
            assert "Secure" not in cookie and "Path=/" in cookie, cookie
            await call("GET")
            # the cookie opens the stream, as a token does
            async with http.get(f"{gateway.http}/events?types=quote") as events:
                seen.append(("events", events.status, None))
            await call(
                "POST", {"token": site.tokens["desk"]}, headers={"Origin": "https://x.example"}
            )
            await call("DELETE", headers=own)
            await call("GET")
            async with http.get(f"{gateway.http}/events") as events:
                seen.append(("events", events.status, None))
        return seen

    seen = asyncio.run(run())
    assert [(m, s) for m, s, _ in seen] == [
        ("GET", 401),
        ("POST", 401),
        ("POST", 200),
        ("GET", 200),
        ("events", 200),
        ("POST", 403),
        ("DELETE", 204),
        ("GET", 401),
        ("events", 401),
    ]
    bodies = [
        b for m, s, b in seen if m in ("GET", "POST") and s in (200, 401) and isinstance(b, dict)
    ]
    assert {"auth": "token", "client": "desk"} in bodies
    for body in [*bodies, {"token": site.tokens["desk"]}]:
        assert not list(validator.iter_errors(body)), body
