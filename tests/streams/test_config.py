"""Config validation: every bad key is named, and the CLI stops before reading input."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from arbstream.config import load_config, parse_config
from arbstream.streams.errors import ArbstreamError, ConfigError

GOOD: dict[str, Any] = {
    "topic_prefix": "arb",
    "defaults": {"stale_ms": 5000, "fx_stale_ms": 60000, "windows_ms": [60000, 300000]},
    "arb": {"open_usd": 0.5, "close_usd": 0.25, "persist_ms": 1000, "update_usd": 0.1},
    "wide": {"open_bps": 500, "close_bps": 400},
    "venues": {
        "COMEX": {"currency": "USD", "unit": "oz", "fee_bps": 0.5},
        "SGE": {
            "currency": "CNY",
            "unit": "kg",
            "units": {"XAU": "g"},
            "vat": 0.13,
            "stale_ms": 3000,
        },
        "SLV": {"currency": "USD", "unit": 0.8636},
    },
    "routes": [{"buy": "COMEX", "sell": "SGE", "cost_usd": 1.5, "cost_bps": 10}],
    "kafka": {"partitions": 8, "replication": 1},
    "feeds": {
        "comex": {"protocol": "native", "url": "ws://127.0.0.1:9001/comex", "venue": "COMEX"},
        "slv": {
            "protocol": "binance",
            "url": "wss://fstream.binance.com/public/ws",
            "venue": "SLV",
            "symbols": {"XAGUSDT": "XAG"},
            "sequence": "contiguous",
        },
        "usdcny": {
            "protocol": "massive",
            "url": "wss://socket.massive.com/forex",
            "symbols": {"USD/CNY": "USDCNY"},
            "api_key_env": "MASSIVE_API_KEY",
        },
    },
    "producer": {"buffer_max_records": 1000, "compression": "lz4"},
}


def _with(path: str, value: Any) -> dict[str, Any]:
    data = copy.deepcopy(GOOD)
    *parents, last = path.split(".")
    node: Any = data
    for p in parents:
        node = node[int(p)] if p.isdigit() else node[p]
    if value is KeyError:
        del node[last]
    elif isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return data


BAD = [
    ("unknown top-level key", _with("extra", 1), "extra"),
    ("misspelled default", _with("defaults.stale_msx", 1), "defaults.stale_msx"),
    ("unknown venue key", _with("venues.SGE.fees", 1), "venues.SGE.fees"),
    ("negative stale", _with("defaults.stale_ms", -1), "defaults.stale_ms"),
    ("negative venue stale", _with("venues.SGE.stale_ms", -5), "venues.SGE.stale_ms"),
    ("negative open", _with("arb.open_usd", -0.5), "arb.open_usd"),
    ("negative persist", _with("arb.persist_ms", -1), "arb.persist_ms"),
    ("negative route cost", _with("routes.0.cost_usd", -1.0), "routes[0].cost_usd"),
    ("close above open", _with("arb.close_usd", 0.75), "arb.close_usd"),
    ("wide close above open", _with("wide.close_bps", 600), "wide.close_bps"),
    ("route to unknown venue", _with("routes.0.sell", "MCX"), "routes[0].sell"),
    ("route buy missing", _with("routes.0.buy", KeyError), "routes[0].buy"),
    ("route to itself", _with("routes.0.sell", "COMEX"), "routes[0].sell"),
    ("string threshold", _with("arb.open_usd", "0.5"), "arb.open_usd"),
    ("bool threshold", _with("defaults.stale_ms", True), "defaults.stale_ms"),
    ("bad unit", _with("venues.COMEX.unit", "lb"), "venues.COMEX.unit"),
    ("zero unit", _with("venues.SLV.unit", 0), "venues.SLV.unit"),
    ("bad unit override", _with("venues.SGE.units", {"XAU": "ton"}), "venues.SGE.units.XAU"),
    ("lowercase currency", _with("venues.SGE.currency", "cny"), "venues.SGE.currency"),
    ("currency missing", _with("venues.SGE.currency", KeyError), "venues.SGE.currency"),
    ("vat as percent", _with("venues.SGE.vat", 13), "venues.SGE.vat"),
    ("empty windows", _with("defaults.windows_ms", []), "defaults.windows_ms"),
    ("zero window", _with("defaults.windows_ms", [0]), "defaults.windows_ms[0]"),
    ("no venues", _with("venues", {}), "venues"),
    ("zero partitions", _with("kafka.partitions", 0), "kafka.partitions"),
    ("unknown protocol", _with("feeds.comex.protocol", "fix"), "feeds.comex.protocol"),
    ("http url", _with("feeds.comex.url", "http://x:1/"), "feeds.comex.url"),
    ("feed option typo", _with("feeds.comex.idle_timeout", 5), "feeds.comex.idle_timeout"),
    ("zero idle timeout", _with("feeds.comex.idle_timeout_s", 0), "feeds.comex.idle_timeout_s"),
    ("feed venue unknown", _with("feeds.comex.venue", "NYMEX"), "feeds.comex.venue"),
    ("quote feed without venue", _with("feeds.comex.venue", KeyError), "feeds.comex.venue"),
    ("fx feed with a venue", _with("feeds.usdcny.venue", "COMEX"), "feeds.usdcny.venue"),
    ("binance without symbols", _with("feeds.slv.symbols", {}), "feeds.slv.symbols"),
    ("bad sequence mode", _with("feeds.slv.sequence", "strict"), "feeds.slv.sequence"),
    (
        "massive without key",
        _with("feeds.usdcny.api_key_env", KeyError),
        "feeds.usdcny.api_key_env",
    ),
    ("key env not a name", _with("feeds.usdcny.api_key_env", "my key"), "feeds.usdcny.api_key_env"),
    (
        "massive bad pair",
        _with("feeds.usdcny.symbols", {"USD/CNY": "CNY"}),
        "feeds.usdcny.symbols.USD/CNY",
    ),
    (
        "feed name",
        _with("feeds.a b", {"protocol": "native", "url": "ws://h:1", "venue": "SGE"}),
        "feeds.a b",
    ),
    (
        "65-character instrument in units",
        _with("venues.SGE.units", {"I" * 65: "g"}),
        "venues.SGE.units." + "I" * 65,
    ),
    (
        "65-character instrument in metrics",
        _with("metrics", {"instruments": ["XAG", "I" * 65]}),
        "metrics.instruments[1]",
    ),
    (
        "65-character venue name",
        _with("venues." + "V" * 65, {"currency": "USD", "unit": "oz"}),
        "venues." + "V" * 65,
    ),
    ("zero buffer", _with("producer.buffer_max_records", 0), "producer.buffer_max_records"),
    ("bad compression", _with("producer.compression", "brotli"), "producer.compression"),
]


@pytest.mark.parametrize(("data", "key"), [(b[1], b[2]) for b in BAD], ids=[b[0] for b in BAD])
def test_bad_config_names_the_key(data: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(data, "test.toml")
    assert f"  {key}:" in str(info.value), str(info.value)
    assert isinstance(info.value, ArbstreamError)


def test_good_config_derives_lookups() -> None:
    cfg = parse_config(GOOD)
    assert cfg.stale_ms == {"COMEX": 5000, "SGE": 3000, "SLV": 5000}
    assert cfg.oz_per_unit("SGE", "XAG") == pytest.approx(32.1507466)
    assert cfg.oz_per_unit("SGE", "XAU") == pytest.approx(0.0321507466)
    assert cfg.oz_per_unit("SLV", "XAG") == 0.8636
    assert [(r.buy, r.sell) for r in cfg.routes] == [("COMEX", "SGE")]


def test_feed_tables_are_validated_models_left_out_of_the_fingerprint() -> None:
    cfg = parse_config(GOOD)
    assert cfg.feeds["slv"].symbols == {"XAGUSDT": "XAG"}
    assert cfg.feeds["comex"].backoff_max_s == 3.0 and cfg.producer.buffer_max_records == 1000
    # A worker's state must survive moving a feed: only what the engine computes counts.
    moved = parse_config(_with("feeds.comex.url", "ws://10.0.0.1:9001/comex"))
    assert moved.fingerprint() == cfg.fingerprint()
    assert parse_config(_with("arb.open_usd", 0.6)).fingerprint() != cfg.fingerprint()


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("topic_prefix", "other"),
        ("kafka.partitions", 3),
        ("producer.linger_ms", 7),
        ("metrics", {"instruments": ["XAG"]}),
        ("feeds", {}),
    ],
)
def test_the_fingerprint_covers_the_engine_sections_only(path: str, value: Any) -> None:
    """Deployment settings extend the engine's; only the engine's enter its fingerprint."""
    assert parse_config(_with(path, value)).fingerprint() == parse_config(GOOD).fingerprint()


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("defaults.stale_ms", 1),
        ("wide.open_bps", 900),
        ("venues.SGE.vat", 0.1),
        ("routes", []),
    ],
)
def test_the_fingerprint_changes_with_every_engine_section(path: str, value: Any) -> None:
    assert parse_config(_with(path, value)).fingerprint() != parse_config(GOOD).fingerprint()


def test_no_routes_means_every_ordered_pair_at_zero_cost() -> None:
    cfg = parse_config(_with("routes", []))
    pairs = [(r.buy, r.sell) for r in cfg.routes]
    assert pairs == sorted(pairs) and len(pairs) == 6
    assert all(r.cost_usd == 0 and r.cost_bps == 0 for r in cfg.routes)


def test_defaults_apply_when_sections_are_absent() -> None:
    cfg = parse_config({"venues": {"COMEX": {"currency": "USD", "unit": "oz"}}})
    assert cfg.topic_prefix == "arb" and cfg.windows_ms == (60000, 300000)
    assert cfg.arb.open_usd == 0.5 and cfg.kafka.partitions == 8


def test_unreadable_and_invalid_toml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[venues\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)


def test_cli_exits_nonzero_naming_key_before_reading_input(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        '[venues.COMEX]\ncurrency = "USD"\nunit = "oz"\n[arb]\nopen_usd = 0.1\nclose_usd = 0.2\n'
    )
    # The input does not exist: a config error must come first, and nothing is read.
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "arbstream.cli",
            "replay",
            str(tmp_path / "nope.jsonl"),
            "--config",
            str(cfg),
            "--output",
            str(tmp_path / "out.jsonl"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert "arb.close_usd" in proc.stderr
    assert not (tmp_path / "out.jsonl").exists()
