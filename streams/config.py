"""The TOML configuration (contracts.md §6), validated before any input is read.

Validation is pydantic's, in strict mode with unknown keys forbidden, so a typo is an
error that names the key (``venues.SGE.stale_msx``), never a silently ignored setting.
The validated models are frozen; :class:`Config` adds the derived lookups the engine
needs (per-venue staleness, unit factors, the route list).
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from streams.counters import OTHER
from streams.errors import ConfigError
from streams.feed_config import QUOTE_PROTOCOLS, FeedSettings, ProducerSettings, feed_problems
from streams.validation import NAME_LIMIT

#: Troy ounces in one unit of each named unit (contracts.md §1).
OZ_PER_UNIT: dict[str, float] = {"oz": 1.0, "kg": 32.1507466, "g": 0.0321507466}

NonNegFloat = Annotated[float, Field(ge=0, allow_inf_nan=False)]
NonNegInt = Annotated[int, Field(ge=0)]
# A unit is a name or a positive number of troy ounces (an ETF share holds ~0.86 oz).
Unit = Literal["oz", "kg", "g"] | Annotated[float, Field(gt=0, allow_inf_nan=False)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class Defaults(_Section):
    stale_ms: NonNegInt = 5000
    fx_stale_ms: NonNegInt = 60000
    windows_ms: Annotated[list[Annotated[int, Field(gt=0)]], Field(min_length=1)] = [
        60000,
        300000,
    ]
    spread_emit_ms: NonNegInt = 0

    @model_validator(mode="after")
    def _distinct_windows(self) -> Defaults:
        if len(set(self.windows_ms)) != len(self.windows_ms):
            raise ValueError("windows_ms must not repeat a window")
        return self


class ArbSettings(_Section):
    open_usd: NonNegFloat = 0.50
    close_usd: NonNegFloat = 0.25
    persist_ms: NonNegInt = 1000
    update_usd: NonNegFloat = 0.10


class WideSettings(_Section):
    open_bps: NonNegFloat = 500.0
    close_bps: NonNegFloat = 400.0


class VenueSettings(_Section):
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")]
    unit: Unit
    units: dict[str, Unit] = {}
    vat: Annotated[float, Field(ge=0, lt=1)] = 0.0
    fee_bps: NonNegFloat = 0.0
    stale_ms: NonNegInt | None = None


class RouteSettings(_Section):
    buy: str
    sell: str
    cost_usd: NonNegFloat = 0.0
    cost_bps: NonNegFloat = 0.0


class KafkaSettings(_Section):
    partitions: Annotated[int, Field(ge=1)] = 8
    replication: Annotated[int, Field(ge=1)] = 1


class MetricsSettings(_Section):
    #: The instruments that get their own label value in metrics; every other instrument
    #: is summed under ``other`` in counters and left out of gauges, so what arrives on
    #: the ticks topic cannot grow the label sets. Default: the instruments the config
    #: names elsewhere (feed symbol maps of quote feeds, venues' ``units``).
    instruments: list[Annotated[str, Field(min_length=1)]] | None = None


class ConfigModel(_Section):
    topic_prefix: Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]+$")] = "arb"
    defaults: Defaults = Defaults()
    arb: ArbSettings = ArbSettings()
    wide: WideSettings = WideSettings()
    venues: Annotated[dict[str, VenueSettings], Field(min_length=1)]
    routes: list[RouteSettings] = []
    kafka: KafkaSettings = KafkaSettings()
    feeds: dict[str, FeedSettings] = {}
    producer: ProducerSettings = ProducerSettings()
    metrics: MetricsSettings = MetricsSettings()


class Route:
    """One ordered (buy, sell) pair with its costs; venues are validated names."""

    __slots__ = ("buy", "cost_bps", "cost_usd", "sell")

    def __init__(self, buy: str, sell: str, cost_usd: float, cost_bps: float) -> None:
        self.buy = buy
        self.sell = sell
        self.cost_usd = cost_usd
        self.cost_bps = cost_bps

    def __repr__(self) -> str:
        return f"Route({self.buy}>{self.sell}, {self.cost_usd} USD, {self.cost_bps} bps)"


class Config:
    """A validated configuration plus the lookups derived from it."""

    def __init__(self, model: ConfigModel, source: str = "<config>") -> None:
        self.model = model
        self.source = source
        d = model.defaults
        self.topic_prefix = model.topic_prefix
        self.fx_stale_ms = d.fx_stale_ms
        # In config order: spread records list their windows in the order configured.
        self.windows_ms: tuple[int, ...] = tuple(d.windows_ms)
        self.spread_emit_ms = d.spread_emit_ms
        self.arb = model.arb
        self.wide = model.wide
        self.kafka = model.kafka
        self.feeds: Mapping[str, FeedSettings] = model.feeds
        self.producer = model.producer
        self.venues: Mapping[str, VenueSettings] = model.venues
        self.venue_names: tuple[str, ...] = tuple(sorted(model.venues))
        self.stale_ms: dict[str, int] = {
            name: (v.stale_ms if v.stale_ms is not None else d.stale_ms)
            for name, v in model.venues.items()
        }
        self.fee_bps: dict[str, float] = {name: v.fee_bps for name, v in model.venues.items()}
        self.currency: dict[str, str] = {name: v.currency for name, v in model.venues.items()}
        if model.routes:
            routes = [Route(r.buy, r.sell, r.cost_usd, r.cost_bps) for r in model.routes]
        else:
            # No routes configured: every ordered pair of distinct venues, at zero cost.
            names = self.venue_names
            routes = [Route(b, s, 0.0, 0.0) for b in names for s in names if b != s]
        self.routes: tuple[Route, ...] = tuple(sorted(routes, key=lambda r: (r.buy, r.sell)))
        self.metric_instruments: frozenset[str] = _metric_instruments(model)
        #: The FX pairs the venues need ("USD" + currency of each non-USD venue).
        self.fx_pairs: frozenset[str] = frozenset(
            "USD" + cur for cur in self.currency.values() if cur != "USD"
        )

    def oz_per_unit(self, venue: str, instrument: str) -> float:
        """Troy ounces in one quoted unit of ``instrument`` at ``venue``."""
        v = self.venues[venue]
        unit = v.units.get(instrument, v.unit)
        return OZ_PER_UNIT[unit] if isinstance(unit, str) else float(unit)

    def fingerprint(self) -> str:
        """A stable text identifying what the engine computes, stored in snapshots.

        Feed, producer and metrics settings are left out: moving a feed to another URL
        must not invalidate a worker's state."""
        return self.model.model_dump_json(exclude={"feeds", "producer", "metrics"})


def _metric_instruments(model: ConfigModel) -> frozenset[str]:
    if model.metrics.instruments is not None:
        return frozenset(model.metrics.instruments)
    named = {i for venue in model.venues.values() for i in venue.units}
    for feed in model.feeds.values():
        if feed.protocol in QUOTE_PROTOCOLS:
            named.update(feed.symbols.values())
    return frozenset(named)


def _key_of(loc: tuple[int | str, ...]) -> str:
    key = ""
    for part in loc:
        if isinstance(part, int):
            key += f"[{part}]"
        elif part.startswith(("literal[", "function-", "float", "int", "str")) and key:
            # pydantic adds union-branch names to the location; they are not keys.
            continue
        else:
            key += f".{part}" if key else part
    return key or "<root>"


def parse_config(data: Mapping[str, Any], source: str = "<config>") -> Config:
    """Validate already-parsed TOML data; raise ConfigError naming every bad key."""
    try:
        model = ConfigModel.model_validate(dict(data))
    except ValidationError as exc:
        problems = []
        seen: set[str] = set()
        for err in exc.errors():
            key = _key_of(tuple(err["loc"]))
            if key in seen:  # a union reports each branch; one line per key is enough
                continue
            seen.add(key)
            problems.append(f"  {key}: {err['msg']}")
        raise ConfigError(f"invalid config {source}:\n" + "\n".join(problems)) from None
    _check_relations(model, source)
    return Config(model, source)


def _check_relations(model: ConfigModel, source: str) -> None:
    problems = []
    if model.arb.close_usd > model.arb.open_usd:
        problems.append("  arb.close_usd: must not exceed arb.open_usd (hysteresis)")
    if model.wide.close_bps > model.wide.open_bps:
        problems.append("  wide.close_bps: must not exceed wide.open_bps (hysteresis)")
    seen: set[tuple[str, str]] = set()
    for i, route in enumerate(model.routes):
        for side in ("buy", "sell"):
            name = getattr(route, side)
            if name not in model.venues:
                problems.append(f"  routes[{i}].{side}: unknown venue {name!r}")
        if route.buy == route.sell:
            problems.append(f"  routes[{i}].sell: a route needs two different venues")
        if (route.buy, route.sell) in seen:
            problems.append(f"  routes[{i}]: duplicate route {route.buy}>{route.sell}")
        seen.add((route.buy, route.sell))
    named = [(f"venues.{v}.units.{i}", i) for v, venue in model.venues.items() for i in venue.units]
    named += [
        (f"feeds.{f}.symbols.{sym}", i)
        for f, feed in model.feeds.items()
        if feed.protocol in QUOTE_PROTOCOLS
        for sym, i in feed.symbols.items()
    ]
    named += [
        (f"metrics.instruments[{n}]", i) for n, i in enumerate(model.metrics.instruments or [])
    ]
    for key, instrument in named:
        if len(instrument) > NAME_LIMIT:
            problems.append(f"  {key}: an instrument name has at most {NAME_LIMIT} characters")
    if model.metrics.instruments is not None and OTHER in model.metrics.instruments:
        problems.append(f'  metrics.instruments: "{OTHER}" is the label of unlisted instruments')
    for name, venue in model.venues.items():
        if not name or "|" in name or ">" in name or len(name) > NAME_LIMIT:
            problems.append(
                f"  venues.{name}: a venue name must be non-empty, at most {NAME_LIMIT} "
                "characters, without '|' or '>'"
            )
        for instrument, unit in venue.units.items():
            if isinstance(unit, float) and not math.isfinite(unit):
                problems.append(f"  venues.{name}.units.{instrument}: must be finite")
    problems += feed_problems(model.feeds, model.venues)
    if problems:
        raise ConfigError(f"invalid config {source}:\n" + "\n".join(problems))


def load_config(path: str | Path) -> Config:
    """Read and validate a TOML config file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config {p}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config {p} is not UTF-8 text") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config {p} is not valid TOML: {exc}") from None
    return parse_config(data, str(p))
