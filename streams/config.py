"""The engine's settings: thresholds, windows, venues and routes (docs/config.md).

These are the sections of a config file that decide what the engine computes
(``[defaults]``, ``[arb]``, ``[wide]``, ``[venues.*]``, ``[[routes]]``). The deployment
settings around them (topics, Kafka, feeds, metrics) are defined by the packages that
use them and joined with these into one file model by ``arbstream.config``.

Validation is pydantic's, in strict mode with unknown keys forbidden, so a typo is an
error that names the key (``venues.SGE.stale_msx``), never a silently ignored setting.
The validated models are frozen; :class:`EngineConfig` adds the derived lookups the
engine needs (per-venue staleness, unit factors, the route list) and the fingerprint a
worker's state is stored under.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import date
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from arbstream.streams.errors import ConfigError
from arbstream.streams.sessions import Calendar, expiry_ms, session_problems
from arbstream.streams.validation import NAME_LIMIT

#: Troy ounces in one unit of each named unit (docs/evaluation.md, "Normalisation").
OZ_PER_UNIT: dict[str, float] = {"oz": 1.0, "kg": 32.1507466, "g": 0.0321507466}

NonNegFloat = Annotated[float, Field(ge=0, allow_inf_nan=False)]
NonNegInt = Annotated[int, Field(ge=0)]
# A unit is a name or a positive number of troy ounces (an ETF share holds ~0.86 oz).
Unit = Literal["oz", "kg", "g"] | Annotated[float, Field(gt=0, allow_inf_nan=False)]


class Section(BaseModel):
    """A config table: strict types, unknown keys refused, frozen once validated."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class Defaults(Section):
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


class ArbSettings(Section):
    open_usd: NonNegFloat = 0.50
    close_usd: NonNegFloat = 0.25
    persist_ms: NonNegInt = 1000
    update_usd: NonNegFloat = 0.10


class WideSettings(Section):
    open_bps: NonNegFloat = 500.0
    close_bps: NonNegFloat = 400.0


class VenueSettings(Section):
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")]
    unit: Unit
    units: dict[str, Unit] = {}
    vat: Annotated[float, Field(ge=0, lt=1)] = 0.0
    fee_bps: NonNegFloat = 0.0
    stale_ms: NonNegInt | None = None
    #: Units of the venue's unit in one lot (quote sizes count lots).
    lot: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 1.0
    #: Trading sessions (streams/sessions.py); without ``sessions`` always open.
    timezone: str | None = None
    sessions: list[str] | None = None
    days: list[str] | None = None
    holidays: list[date] = []
    #: A futures contract's expiry: 00:00 UTC of this date.
    expiry: date | None = None


class BasisPair(Section):
    spot: str
    future: str


class BasisSettings(Section):
    rate: Annotated[float, Field(allow_inf_nan=False)] = 0.043
    open_bps: NonNegFloat = 50.0
    close_bps: NonNegFloat = 10.0
    emit_ms: NonNegInt = 1000
    pairs: list[BasisPair] = []


class DeliverySettings(Section):
    open_ratio: NonNegFloat = 0.5
    close_ratio: NonNegFloat = 0.6


class LevelSettings(Section):
    """``[[levels]]``: a price level watched on one venue's quotes of one instrument."""

    name: str
    instrument: str
    venue: str
    #: USD per troy ounce, normalised as every quote is.
    price: Annotated[float, Field(gt=0, allow_inf_nan=False)]
    band_usd: NonNegFloat = 0.0


class RouteSettings(Section):
    buy: str
    sell: str
    cost_usd: NonNegFloat = 0.0
    cost_bps: NonNegFloat = 0.0


class EngineModel(Section):
    """The engine's sections of a config file."""

    defaults: Defaults = Defaults()
    arb: ArbSettings = ArbSettings()
    wide: WideSettings = WideSettings()
    venues: Annotated[dict[str, VenueSettings], Field(min_length=1)]
    routes: list[RouteSettings] = []
    basis: BasisSettings = BasisSettings()
    delivery: DeliverySettings = DeliverySettings()
    levels: list[LevelSettings] = []


class Level:
    """One price level: its signal's name, the venue and instrument it watches, its price
    (USD/oz) and its hysteresis band (docs/evaluation.md, "Price levels")."""

    __slots__ = ("band_usd", "instrument", "name", "price", "venue")

    def __init__(self, settings: LevelSettings) -> None:
        self.name = settings.name
        self.instrument = settings.instrument
        self.venue = settings.venue
        self.price = settings.price
        self.band_usd = settings.band_usd


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


class EngineConfig:
    """The engine's validated settings plus the lookups derived from them."""

    def __init__(self, model: EngineModel, source: str = "<config>") -> None:
        self.model = model
        self.source = source
        d = model.defaults
        self.fx_stale_ms = d.fx_stale_ms
        # In config order: spread records list their windows in the order configured.
        self.windows_ms: tuple[int, ...] = tuple(d.windows_ms)
        self.spread_emit_ms = d.spread_emit_ms
        self.arb = model.arb
        self.wide = model.wide
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
        #: The FX pairs the venues need ("USD" + currency of each non-USD venue).
        self.fx_pairs: frozenset[str] = frozenset(
            "USD" + cur for cur in self.currency.values() if cur != "USD"
        )
        #: Each venue's trading sessions; None: always open.
        self.calendars: dict[str, Calendar | None] = {
            name: None
            if v.sessions is None
            else Calendar(v.timezone, v.sessions, v.days, v.holidays)
            for name, v in model.venues.items()
        }
        #: Futures venues: expiry as epoch ms (00:00 UTC of the expiry date).
        self.expiry_ms: dict[str, int] = {
            name: expiry_ms(v.expiry) for name, v in model.venues.items() if v.expiry is not None
        }
        self.basis = model.basis
        #: The basis pairs (spot, future), in output order.
        self.basis_pairs: tuple[tuple[str, str], ...] = tuple(
            sorted({(p.spot, p.future) for p in model.basis.pairs})
        )
        self.delivery = model.delivery
        #: The price levels of each (venue, instrument), in name order.
        self.levels: dict[tuple[str, str], tuple[Level, ...]] = {}
        for level in sorted(model.levels, key=lambda lv: lv.name):
            key = (level.venue, level.instrument)
            self.levels[key] = (*self.levels.get(key, ()), Level(level))

    def oz_per_lot(self, venue: str, instrument: str) -> float:
        """Troy ounces in one lot (quote sizes count lots) of ``instrument`` at ``venue``."""
        return self.venues[venue].lot * self.oz_per_unit(venue, instrument)

    def oz_per_unit(self, venue: str, instrument: str) -> float:
        """Troy ounces in one quoted unit of ``instrument`` at ``venue``."""
        v = self.venues[venue]
        unit = v.units.get(instrument, v.unit)
        return OZ_PER_UNIT[unit] if isinstance(unit, str) else float(unit)

    def fingerprint(self) -> str:
        """A stable text identifying what the engine computes, stored in snapshots: the
        engine's own sections and nothing else, so that moving a feed, renaming topics or
        changing Kafka settings never invalidates a worker's state. (A config without
        levels has the fingerprint it had before levels existed.)"""
        fields = set(EngineModel.model_fields)
        if not self.model.levels:
            fields.discard("levels")
        return self.model.model_dump_json(include=fields)


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


def validation_problems(exc: ValidationError) -> list[str]:
    """One ``  key: message`` line per bad key of a pydantic validation error."""
    problems = []
    seen: set[str] = set()
    for err in exc.errors():
        key = _key_of(tuple(err["loc"]))
        if key in seen:  # a union reports each branch; one line per key is enough
            continue
        seen.add(key)
        problems.append(f"  {key}: {err['msg']}")
    return problems


def engine_problems(model: EngineModel) -> list[str]:
    """The rules between keys of the engine's sections, one ``  key: message`` line each."""
    problems = []
    if model.arb.close_usd > model.arb.open_usd:
        problems.append("  arb.close_usd: must not exceed arb.open_usd (hysteresis)")
    if model.wide.close_bps > model.wide.open_bps:
        problems.append("  wide.close_bps: must not exceed wide.open_bps (hysteresis)")
    routes = [(r.buy, r.sell) for r in model.routes]
    problems += venue_pair_problems("routes", "route", ("buy", "sell"), routes, model.venues)
    for name, venue in model.venues.items():
        if not name or "|" in name or ">" in name or len(name) > NAME_LIMIT:
            problems.append(
                f"  venues.{name}: a venue name must be non-empty, at most {NAME_LIMIT} "
                "characters, without '|' or '>'"
            )
        for instrument, unit in venue.units.items():
            if len(instrument) > NAME_LIMIT:
                problems.append(
                    f"  venues.{name}.units.{instrument}: an instrument name has at most "
                    f"{NAME_LIMIT} characters"
                )
            if isinstance(unit, float) and not math.isfinite(unit):
                problems.append(f"  venues.{name}.units.{instrument}: must be finite")
        problems += session_problems(f"venues.{name}", venue)
    problems += _market_problems(model)
    return problems


def venue_pair_problems(
    key: str,
    what: str,
    sides: tuple[str, str],
    pairs: list[tuple[str, str]],
    venues: Mapping[str, VenueSettings],
) -> list[str]:
    """Ordered venue pairs (routes, basis pairs): both venues known, two of them, and no
    pair twice."""
    problems = []
    seen: set[tuple[str, str]] = set()
    for i, pair in enumerate(pairs):
        for side, name in zip(sides, pair, strict=True):
            if name not in venues:
                problems.append(f"  {key}[{i}].{side}: unknown venue {name!r}")
        if pair[0] == pair[1]:
            problems.append(f"  {key}[{i}].{sides[1]}: a {what} needs two different venues")
        if pair in seen:
            problems.append(f"  {key}[{i}]: duplicate {what} {pair[0]}>{pair[1]}")
        seen.add(pair)
    return problems


def _market_problems(model: EngineModel) -> list[str]:
    """The rules of ``[basis]`` and ``[delivery]`` between keys (docs/config.md)."""
    problems = []
    basis = model.basis
    if basis.close_bps > basis.open_bps:
        problems.append("  basis.close_bps: must not exceed basis.open_bps (hysteresis)")
    pairs = [(p.spot, p.future) for p in basis.pairs]
    problems += venue_pair_problems(
        "basis.pairs", "basis pair", ("spot", "future"), pairs, model.venues
    )
    for i, (spot_name, future_name) in enumerate(pairs):
        spot, future = model.venues.get(spot_name), model.venues.get(future_name)
        if spot is not None and spot.expiry is not None:
            problems.append(
                f"  venues.{spot_name}.expiry: the spot of basis.pairs[{i}] has no expiry"
            )
        if future is not None and future.expiry is None:
            problems.append(f"  basis.pairs[{i}].future: venue {future_name!r} has no expiry")
    if model.delivery.close_ratio < model.delivery.open_ratio:
        problems.append(
            "  delivery.close_ratio: must not be below delivery.open_ratio (hysteresis)"
        )
    return problems + _level_problems(model)


def _level_problems(model: EngineModel) -> list[str]:
    """The rules of ``[[levels]]`` beyond each value's type (docs/config.md)."""
    problems = []
    seen: set[tuple[str, str]] = set()
    for i, level in enumerate(model.levels):
        if not level.name or len(level.name) > NAME_LIMIT:
            problems.append(
                f"  levels[{i}].name: a level name must be non-empty and at most "
                f"{NAME_LIMIT} characters"
            )
        if not level.instrument or len(level.instrument) > NAME_LIMIT:
            problems.append(
                f"  levels[{i}].instrument: must be non-empty and at most {NAME_LIMIT} characters"
            )
        if level.venue not in model.venues:
            problems.append(f"  levels[{i}].venue: unknown venue {level.venue!r}")
        key = (level.instrument, level.name)
        if key in seen:
            problems.append(
                f"  levels[{i}].name: duplicate level {level.name!r} for instrument "
                f"{level.instrument!r}"
            )
        seen.add(key)
    return problems


def raise_problems(problems: list[str], source: str) -> None:
    """ConfigError listing ``problems`` (one line each), if there are any."""
    if problems:
        raise ConfigError(f"invalid config {source}:\n" + "\n".join(problems))
