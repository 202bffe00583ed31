"""The gateway's page in a real browser (Debian's headless Chromium through its
chromedriver, installed by scripts/install-browser.sh) against the running demo: what a
person would see. Screenshots go to out/test-artifacts/ (not committed)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from arbstream.agents.kafka.topics import Topics
from helpers.alertmanager import alertmanager_bin_dir
from helpers.gateway import GatewayProcess, quotes_site
from helpers.kafka import consume, free_port, scaled
from helpers.paths import REPO, SCENARIOS
from helpers.pipeline import demo_config
from helpers.prometheus import prometheus_bin_dir

ARTIFACTS = REPO / "out" / "test-artifacts"
SCENARIO = SCENARIOS / "dislocation-2026-01-30"
VENUES = {"COMEX", "LBMA", "SHFE", "SGE", "SHUIBEI"}


@pytest.fixture(scope="module")
def browser_paths() -> tuple[str, str]:
    out = subprocess.run(
        [str(REPO / "scripts" / "install-browser.sh")],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    chromium, chromedriver = out.stdout.split()
    return chromium, chromedriver


@pytest.fixture
def browser(browser_paths: tuple[str, str], tmp_path: Path) -> Iterator[WebDriver]:
    chromium, chromedriver = browser_paths
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in (
        "--headless=new",
        "--no-sandbox",  # root in a container has no user namespace for the sandbox
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1400,1000",
        f"--user-data-dir={tmp_path / 'chromium'}",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(
        service=Service(chromedriver, log_output=str(tmp_path / "chromedriver.log")),
        options=options,
    )
    try:
        yield driver
    finally:
        driver.quit()


def _pids(needle: str) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if needle in cmdline:
                out.append(int(entry.name))
    return out


def _until(check: Callable[[], Any], timeout_s: float, what: str, driver: WebDriver) -> Any:
    deadline = time.monotonic() + scaled(timeout_s)
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except Exception as exc:  # the page is being re-rendered: look again
            last = exc
        else:
            if last:
                return last
        time.sleep(0.2)
    _shot(driver, f"failed-{what.replace(' ', '-')}")
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


def _shot(driver: WebDriver, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(ARTIFACTS / f"gateway-{name}.png"))


def _served(driver: WebDriver, url: str) -> bool:
    """Whether the page is loaded; loads it if not (the demo names the page's address
    before its gateway listens: a refused load raises, and ``_until`` tries again)."""
    if driver.find_elements(By.ID, "conn"):
        return True
    driver.get(url)
    return False


def _rows(driver: WebDriver, table: str) -> list[Any]:
    return driver.find_elements(
        By.CSS_SELECTOR, f"#{table} tbody tr[data-key], #{table} tbody tr[data-venue]"
    )


def _latest_spreads(bootstrap: str, topic: str) -> dict[str, float]:
    records = asyncio.run(
        consume(bootstrap, topic, 0, 60, isolation_level="read_committed", linger_s=1.5)
    )
    latest: dict[str, float] = {}
    for r in sorted(records, key=lambda r: (r.partition, r.offset)):
        latest[r.key.decode()] = orjson.loads(r.value)["spread"]
    return latest


def _start_demo(
    bootstrap: str, tmp_path: Path, config: Path, args: list[str]
) -> tuple[subprocess.Popen[bytes], int, Path]:
    """``arbstream demo`` with ``config`` and ``args`` on the test's broker, every port
    free: (the process, its gateway's port, its output file)."""
    port = free_port()
    env = {
        **os.environ,
        "ARBSTREAM_BROKER": f"kafka://{bootstrap}",
        "ARBSTREAM_WEB_PORT": str(free_port()),
        "ARBSTREAM_FEED_METRICS_PORT": str(free_port()),
        "ARBSTREAM_GATEWAY_PORT": str(port),
    }
    command = [sys.executable, "-m", "arbstream.cli", "demo", "--config", str(config)]
    log = tmp_path / "demo.out"
    demo = subprocess.Popen(
        [*command, *args, "--log-dir", str(tmp_path / "logs")],
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    return demo, port, log


def test_the_page_shows_the_live_market_and_reconnects(
    kafka_bootstrap: str, tmp_path: Path, browser: WebDriver
) -> None:
    prefix = f"web{uuid.uuid4().hex[:8]}"
    config = demo_config(tmp_path, prefix)
    run = ["--scenario", str(SCENARIO / "ticks.jsonl"), "--speed", "10", "--seconds", "600"]
    demo, port, log = _start_demo(kafka_bootstrap, tmp_path, config, run)
    second: GatewayProcess | None = None
    url = f"http://127.0.0.1:{port}/"
    try:
        _until(
            lambda: f"live page is at {url}".encode() in log.read_bytes(), 60, "the demo", browser
        )

        def page_live() -> bool:
            if not browser.find_elements(By.ID, "conn"):  # not served yet: load it again
                browser.get(url)
                return False
            state = browser.find_element(By.ID, "conn")
            # (the words as written: CSS may show them in capitals)
            return (
                state.get_attribute("data-state") == "live"
                and state.get_attribute("textContent") == "live"
            )

        _until(page_live, 90, "the page to go live", browser)

        # every venue has a row with its quote's age
        def venue_ages() -> dict[str, str] | None:
            rows = _rows(browser, "venues")
            ages = {
                r.get_attribute("data-venue"): r.find_element(By.CLASS_NAME, "age").text
                for r in rows
            }
            ok = set(ages) == VENUES and all(
                a.endswith((" s", " min", " h")) for a in ages.values()
            )
            return ages if ok else None

        ages = _until(venue_ages, 60, "venue rows with ages", browser)
        assert all(a[0].isdigit() for a in ages.values()), ages

        # the dislocation opens arbitrage: a row with its route and net
        def arb_row() -> tuple[str, str, str] | None:
            for row in _rows(browser, "arbs"):
                route, net = (
                    row.find_element(By.CLASS_NAME, "route").text,
                    row.find_element(By.CLASS_NAME, "net").text,
                )
                if route.startswith("buy ") and " sell " in route and net:
                    return row.get_attribute("data-key"), route, net
            return None

        key, route, net = _until(arb_row, 60, "an open arbitrage row", browser)
        assert key.startswith("XAG|arb|") and float(net) > 0, (key, route, net)
        _shot(browser, "live")

        # pause the venues: once the pipeline is idle, every spread row shows the latest
        # spread record of its pair
        simulators = _pids(f"simulate --config {config}")
        assert len(simulators) == 1, simulators
        os.kill(simulators[0], signal.SIGSTOP)
        spreads_topic = Topics(prefix).spreads

        def page_equals_topic() -> tuple[dict[str, str], dict[str, float]] | None:
            """(shown, latest) once every row shows its pair's latest record."""
            shown = {
                r.get_attribute("data-key"): r.find_element(By.CLASS_NAME, "spread").get_attribute(
                    "data-value"
                )
                for r in _rows(browser, "spreads")
            }
            latest = _latest_spreads(kafka_bootstrap, spreads_topic)
            same = shown and {k: float(v) for k, v in shown.items()} == {
                k: latest.get(k) for k in shown
            }
            return (shown, latest) if same else None

        try:
            # the records in flight when the venues stopped reach Kafka and the page
            shown, latest = _until(page_equals_topic, 60, "the page to show the latest", browser)
        finally:
            os.kill(simulators[0], signal.SIGCONT)
        assert set(shown) <= set(latest)

        # the gateway stops: the page says it is reconnecting, keeping what it showed
        gateways = _pids(f"gateway --config {config}")
        assert len(gateways) == 1, gateways
        os.kill(gateways[0], signal.SIGTERM)

        def reconnecting() -> bool:
            state = browser.find_element(By.ID, "conn")
            return (
                state.get_attribute("data-state") == "reconnecting"
                and state.get_attribute("textContent") == "reconnecting…"
            )

        _until(reconnecting, 30, "the reconnecting state", browser)
        assert _rows(browser, "spreads"), "the last data stays on the page"
        _shot(browser, "reconnecting")
        demo.wait(scaled(60))  # the demo ends when one of its components does

        # a gateway on the same port again: the page reconnects by itself
        second = GatewayProcess(config, kafka_bootstrap, tmp_path / "gateway2.log", port=port)
        _until(
            lambda: browser.find_element(By.ID, "conn").get_attribute("data-state") == "live",
            60,
            "the page to reconnect",
            browser,
        )
        assert {r.get_attribute("data-venue") for r in _rows(browser, "venues")} == VENUES
    finally:
        if demo.poll() is None:
            demo.send_signal(signal.SIGTERM)
            demo.wait(60)
        if second is not None:
            second.stop()


@pytest.mark.prometheus
def test_the_run_to_120_demo_shows_the_levels_the_crosses_the_halt_and_the_alert(
    kafka_bootstrap: str, tmp_path: Path, browser: WebDriver
) -> None:
    """``DEMO_ALERTS=1 DEMO_SCENARIO=run-to-120``: the page draws the levels on the pair's
    prices, lists the crosses, marks COMEX halted during its circuit breaker, and shows
    the alert that a real Prometheus fires on the shipped rules and a real Alertmanager
    holds (and notifies to the demo's webhook); the summary and the terminal's status
    line count them."""
    config = demo_config(tmp_path, f"lvl{uuid.uuid4().hex[:8]}", "run-to-120.toml")
    scenario = SCENARIOS / "run-to-120-2026-01" / "ticks.jsonl"
    summary = tmp_path / "summary.json"
    # at 60x the scenario's hour takes 60 s: its last cross comes at 38 s, and COMEX is
    # halted from 39 s to 47 s
    run = ["--scenario", str(scenario), "--speed", "60", "--seconds", "55"]
    alerts = [
        "--alerts",
        f"--deploy-dir={REPO / 'deploy'}",
        f"--prometheus-bin={prometheus_bin_dir() / 'prometheus'}",
        f"--alertmanager-bin={alertmanager_bin_dir() / 'alertmanager'}",
        f"--prometheus-port={free_port()}",
        f"--alertmanager-port={free_port()}",
    ]
    demo, port, log = _start_demo(
        kafka_bootstrap, tmp_path, config, [*run, *alerts, "--summary", str(summary)]
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        _until(
            lambda: f"live page is at {url}".encode() in log.read_bytes(), 60, "the demo", browser
        )
        _until(lambda: _served(browser, url), 60, "the page", browser)
        # $100 is crossed 8 s into the scenario: its level is drawn on the pair's prices
        _until(
            lambda: "100" in (browser.find_element(By.ID, "prices").get_attribute("data-levels")
                              or "").split(","),
            90,
            "the $100 level on the prices chart",
            browser,
        )  # fmt: skip

        def crosses() -> list[tuple[str, str]]:
            return [
                (r.find_element(By.CLASS_NAME, "name").text,
                 r.find_element(By.CLASS_NAME, "direction").text)
                for r in _rows(browser, "crosses")
            ]  # fmt: skip

        _until(lambda: ("100", "↑ up") in crosses(), 60, "the cross of $100", browser)

        # COMEX>SGE stays open past the rule's 900 s of market time (15 s here) from about
        # 31 s: Prometheus fires ArbstreamArbOpenTooLong, the Alertmanager holds it, the
        # gateway shows it, firing or (from about 37 s) resolved lately
        def arb_alert() -> dict[str, str]:
            for r in _rows(browser, "alerts"):
                cells = {c: r.find_element(By.CLASS_NAME, c).text for c in ("name", "summary")}
                if cells["name"] == "ArbOpenTooLong":
                    return {**cells, "state": r.get_attribute("data-state") or ""}
            return {}

        alert = _until(arb_alert, 90, "the ArbOpenTooLong alert on the page", browser)
        _shot(browser, "alert")
        assert alert["state"] in ("firing", "resolved"), alert
        assert "Arbitrage COMEX>SGE on XAG open for" in alert["summary"], alert
        assert browser.find_element(By.ID, "alerts-panel").is_displayed()

        def comex_halted() -> bool:
            return any(
                r.get_attribute("data-venue") == "COMEX"
                and r.find_element(By.CLASS_NAME, "status").text == "halted"
                for r in _rows(browser, "venues")
            )

        _until(comex_halted, 120, "COMEX halted by its circuit breaker", browser)
        _shot(browser, "halted")
        assert ("resistance-120", "↑ up") in crosses() and ("resistance-120", "↓ down") in crosses()
        halts = [
            r
            for r in _rows(browser, "signals")
            if r.find_element(By.CLASS_NAME, "kind").text == "halt"
        ]
        assert [r.find_element(By.CLASS_NAME, "figure").text for r in halts] == [
            "circuit breaker: limit down"
        ]
        _until(lambda: ("100", "↓ down") in crosses(), 60, "the fall through $100", browser)
        assert demo.wait(scaled(240)) == 0, log.read_text()[-3000:]
        # (the demo loops its scenario: a second lap may have begun before it stopped)
        counts = orjson.loads(summary.read_bytes())["signals"]
        assert counts["halt.open"] >= 2 and counts["level.cross"] >= 6, counts
        status_lines = [line for line in log.read_text().splitlines() if line.startswith("quotes ")]
        assert f"level.cross {counts['level.cross']}" in status_lines[-1]
        # the terminal's view of the alerts, and what reached the demo's webhook (the
        # ticket route: a warning), firing and then resolved
        assert any("(ArbOpenTooLong)" in line for line in status_lines), status_lines
        alerted = orjson.loads(summary.read_bytes())["alerts"]
        assert "ArbstreamArbOpenTooLong" in alerted["seen"], alerted
        assert alerted["notified_names"].get("ArbstreamArbOpenTooLong", 0) >= 1, alerted
        assert alerted["notified"].get("arbstream-ticket firing", 0) >= 1, alerted
    finally:
        if demo.poll() is None:
            demo.send_signal(signal.SIGTERM)
            demo.wait(60)


def test_a_gateway_with_tokens_shows_nothing_until_signed_in(
    kafka_bootstrap: str, tmp_path: Path, browser: WebDriver
) -> None:
    """The page asks for the token once, exchanges it for a session cookie (HttpOnly,
    SameSite=Strict) and shows the market; signed out, it shows nothing again."""
    site = quotes_site(kafka_bootstrap, tmp_path)
    gateway = GatewayProcess(
        site.config,
        site.bootstrap,
        tmp_path / "gateway.log",
        ARBSTREAM_GATEWAY_TOKENS_FILE=str(site.tokens_file),
    )
    url = f"http://127.0.0.1:{gateway.port}/"
    try:
        gateway.wait_ready()
        browser.get(url)
        form = browser.find_element(By.ID, "signin")
        _until(form.is_displayed, 30, "the sign-in form", browser)
        assert not browser.find_element(By.CSS_SELECTOR, "main.grid").is_displayed()
        time.sleep(1.0)  # a page that had connected would have rows by now
        assert _rows(browser, "venues") == [], "data shown before signing in"
        _shot(browser, "signed-out")

        # a wrong token: refused, said so, still nothing
        browser.find_element(By.ID, "token").send_keys("not-the-token")
        browser.find_element(By.ID, "signin-button").click()
        _until(lambda: browser.find_element(By.ID, "signin-error").text, 10, "the error", browser)
        assert _rows(browser, "venues") == []

        browser.find_element(By.ID, "token").send_keys(site.tokens["desk"])
        browser.find_element(By.ID, "signin-button").click()
        _until(
            lambda: browser.find_element(By.ID, "conn").get_attribute("data-state") == "live",
            30,
            "the page to go live after signing in",
            browser,
        )
        assert browser.find_element(By.ID, "who").text == "desk"
        _until(lambda: len(_rows(browser, "venues")) >= 3, 30, "venue rows", browser)
        cookie = browser.get_cookie("arbstream_session")
        assert cookie is not None and cookie["httpOnly"] and cookie["sameSite"] == "Strict"
        # the page keeps no token: only the session cookie, which scripts cannot read
        assert site.tokens["desk"] not in str(browser.execute_script("return document.cookie"))
        assert not browser.find_element(By.ID, "signin").is_displayed()
        _shot(browser, "signed-in")

        browser.find_element(By.ID, "signout").click()
        _until(
            lambda: browser.find_element(By.ID, "signin").is_displayed(), 30, "signed out", browser
        )
        assert _rows(browser, "venues") == []
        assert browser.get_cookie("arbstream_session") is None
    finally:
        assert gateway.stop() == 0
