"""The venue side of every feed protocol, without sockets: the inverse of feeds/protocols.

The simulator must look to ``arbstream feed`` exactly like the real venue, so for each
protocol (docs/venues.md) this module says:

- how an input record (docs/records.md) is written as that venue's frame, such that
  the client's parser reads back the same values (tested as a round trip);
- what the venue says on connect and how it answers the client's requests (subscribe,
  authenticate, ping), keeping per-connection state in a :class:`Session`;
- which feed serves which record (:class:`Router`), so an fx pair is served once.

Pure: no I/O, no clock. Numbering (Binance ``u``, native ``seq``) is per feed, like a
venue's book: every client of the feed sees the same numbers, and a client that was away
sees a gap.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import orjson

from arbstream.feeds.settings import QUOTE_PROTOCOLS, FeedSettings

Record = dict[str, Any]

#: Binance's book update ids are large numbers; start there so frames look real.
BINANCE_FIRST_U = 1_000_000
#: Massive's exchange id for forex quotes.
MASSIVE_EXCHANGE = 48
#: Binance's stream of every contract's status, as a subscription names it (upper case,
#: as the simulator keeps Binance's stream symbols).
CONTRACT_INFO_STREAM = "!CONTRACTINFO"


class EncodeError(ValueError):
    """A record the protocol cannot carry (e.g. a bid that is not a number)."""


@dataclass(frozen=True, slots=True)
class Frame:
    """One data frame and the venue symbol it belongs to (what clients subscribe to)."""

    symbol: str
    text: str


@dataclass(slots=True)
class Session:
    """What one client connection has asked for so far."""

    streaming: bool = False  # data flows to it (subscribed, and authenticated if needed)
    everything: bool = False  # subscribed to every symbol (native; Massive "C.*")
    authenticated: bool = False
    symbols: set[str] = field(default_factory=set)

    def wants(self, symbol: str) -> bool:
        return self.streaming and (self.everything or symbol in self.symbols)


def garble(frame: str) -> str:
    """A corrupted frame for fault injection: cut in the middle, so never valid JSON."""
    return frame[: max(1, len(frame) // 2)]


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def _number(record: Record, key: str) -> float | int:
    value = record.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise EncodeError(f"{key}: not a finite number: {value!r}")
    return value


def _decimal(value: float | int) -> str:
    # repr of a float is the shortest text that float() reads back to the same value.
    return repr(float(value))


def _size(record: Record, key: str) -> str:
    try:
        return _decimal(_number(record, key))
    except EncodeError:
        return "1.0"  # sizes are optional in the contract; the venue always sends one


def _millis(record: Record) -> int:
    ts = record.get("ts")
    if isinstance(ts, bool) or not isinstance(ts, int) or ts < 0:
        raise EncodeError(f"ts: not epoch milliseconds: {ts!r}")
    return ts


def _request(message: str | bytes) -> dict[str, Any] | None:
    try:
        value = orjson.loads(message)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


class VenueProtocol(ABC):
    """Base of the venue sides; one subclass per ``FeedSettings.protocol``."""

    #: Native venues push everything right after connect; the others wait for a subscribe.
    streams_on_connect: ClassVar[bool] = False

    def __init__(self, settings: FeedSettings) -> None:
        self.settings = settings
        self.venue = settings.venue or ""
        # Our name -> the venue's symbol; the first symbol wins if two map to one name.
        self.symbol_of: dict[str, str] = {}
        for symbol, ours in settings.symbols.items():
            self.symbol_of.setdefault(ours, symbol)

    def new_session(self) -> Session:
        return Session(streaming=self.streams_on_connect, everything=self.streams_on_connect)

    def greeting(self) -> list[str]:
        """Frames the venue sends as soon as a client connects."""
        return []

    def answer(self, session: Session, message: str | bytes) -> list[str]:
        """Replies to one client frame; updates what the session is subscribed to."""
        return []

    @abstractmethod
    def encode(self, record: Record) -> Frame:
        """The frame of one routed record. Raises EncodeError if it cannot be carried."""

    def _symbol(self, name: str) -> str:
        symbol = self.symbol_of.get(name)
        if symbol is None:
            raise EncodeError(f"{name!r} is not in the symbol map of this feed")
        return symbol


class NativeVenue(VenueProtocol):
    """A bridge: the contract record itself, numbered per stream, pushed to everyone."""

    streams_on_connect = True

    def __init__(self, settings: FeedSettings) -> None:
        super().__init__(settings)
        self._seq: Counter[tuple[str, str]] = Counter()

    def encode(self, record: Record) -> Frame:
        out = dict(record)
        if record.get("type") == "fx":
            stream = ("fx", str(record.get("pair")))  # fx is numbered per pair
        else:
            instrument = str(record.get("instrument"))
            if self.symbol_of:
                out["instrument"] = self._symbol(instrument)
            out["venue"] = self.venue
            stream = (self.venue, instrument)
        self._seq[stream] += 1
        out["seq"] = self._seq[stream]
        return Frame(str(out.get("instrument", out.get("pair"))), _dumps(out))


class BinanceVenue(VenueProtocol):
    """USD-M futures ``bookTicker``: decimal strings, ``u`` contiguous per symbol."""

    def __init__(self, settings: FeedSettings) -> None:
        super().__init__(settings)
        self._u: dict[str, int] = {}

    def answer(self, session: Session, message: str | bytes) -> list[str]:
        req = _request(message)
        method = req.get("method") if req else None
        params = req.get("params") if req else None
        if (
            req is None
            or method not in ("SUBSCRIBE", "UNSUBSCRIBE")
            or not isinstance(params, list)
        ):
            rid = req.get("id") if req else None
            return [_dumps({"error": {"code": 2, "msg": "Invalid request"}, "id": rid})]
        # Streams are "xagusdt@bookTicker"; the symbol in frames is upper case.
        symbols = {str(p).split("@", 1)[0].upper() for p in params}
        if method == "SUBSCRIBE":
            session.symbols |= symbols
        else:
            session.symbols -= symbols
        session.streaming = bool(session.symbols)
        return [_dumps({"result": None, "id": req.get("id")})]

    def encode(self, record: Record) -> Frame:
        symbol = self._symbol(str(record.get("instrument")))
        ts = _millis(record)
        if record.get("type") == "status":
            return self._contract_info(symbol, record, ts)
        bid, ask = _decimal(_number(record, "bid")), _decimal(_number(record, "ask"))
        u = self._u.get(symbol, BINANCE_FIRST_U - 1) + 1
        self._u[symbol] = u
        frame = {
            "e": "bookTicker",
            "u": u,
            "E": ts,
            "T": ts,
            "s": symbol,
            "b": bid,
            "B": _size(record, "bid_size"),
            "a": ask,
            "A": _size(record, "ask_size"),
        }
        return Frame(symbol.upper(), _dumps(frame))

    @staticmethod
    def _contract_info(symbol: str, record: Record, ts: int) -> Frame:
        """A status record as the ``!contractInfo`` stream carries it: ``TRADING``, or
        ``SETTLING`` for a halt (Binance sends no reason with it)."""
        status = record.get("status")
        if status not in ("halted", "trading"):
            raise EncodeError(f"status: not halted or trading: {status!r}")
        frame = {
            "e": "contractInfo",
            "E": ts,
            "s": symbol,
            "ps": symbol,
            "ct": "PERPETUAL",
            "cs": "TRADING" if status == "trading" else "SETTLING",
        }
        return Frame(CONTRACT_INFO_STREAM, _dumps(frame))


class HyperliquidVenue(VenueProtocol):
    """``bbo`` per coin; answers the client's application-level ping."""

    def answer(self, session: Session, message: str | bytes) -> list[str]:
        req = _request(message)
        method = req.get("method") if req else None
        if req is not None and method == "ping":
            return [_dumps({"channel": "pong"})]
        sub = req.get("subscription") if req else None
        if (
            req is None
            or method not in ("subscribe", "unsubscribe")
            or not isinstance(sub, dict)
            or sub.get("type") != "bbo"
            or not isinstance(sub.get("coin"), str)
        ):
            return [_dumps({"channel": "error", "data": f"Invalid request: {message!r:.200}"})]
        if method == "subscribe":
            session.symbols.add(sub["coin"])
        else:
            session.symbols.discard(sub["coin"])
        session.streaming = bool(session.symbols)
        return [
            _dumps(
                {"channel": "subscriptionResponse", "data": {"method": method, "subscription": sub}}
            )
        ]

    def encode(self, record: Record) -> Frame:
        coin = self._symbol(str(record.get("instrument")))
        bid, ask = _decimal(_number(record, "bid")), _decimal(_number(record, "ask"))
        book = [
            {"px": bid, "sz": _size(record, "bid_size"), "n": 1},
            {"px": ask, "sz": _size(record, "ask_size"), "n": 1},
        ]
        data = {"coin": coin, "time": _millis(record), "bbo": book}
        return Frame(coin, _dumps({"channel": "bbo", "data": data}))


class MassiveVenue(VenueProtocol):
    """Forex quotes: status on connect, then auth, then ``C.<pair>`` subscriptions."""

    def greeting(self) -> list[str]:
        return [_status("connected", "Connected Successfully")]

    def answer(self, session: Session, message: str | bytes) -> list[str]:
        req = _request(message)
        action = req.get("action") if req else None
        params = req.get("params") if req else None
        if req is None or not isinstance(params, str):
            return [_status("error", "invalid message")]
        if action == "auth":
            session.authenticated = bool(params)  # any key will do, but not none
            replies = [
                _status("auth_success", "authenticated")
                if session.authenticated
                else _status("auth_failed", "authentication failed")
            ]
        elif action in ("subscribe", "unsubscribe"):
            if not session.authenticated:
                return [_status("error", "not authorized")]
            wanted = [p.strip() for p in params.split(",") if p.strip()]
            replies = []
            for param in wanted:
                channel, _, pair = param.partition(".")
                if channel != "C" or not pair:
                    replies.append(_status("error", f"unknown channel: {param}"))
                    continue
                if action == "subscribe":
                    session.everything |= pair == "*"
                    session.symbols.add(pair)
                    replies.append(_status("success", f"subscribed to: {param}"))
                else:
                    session.everything &= pair != "*"
                    session.symbols.discard(pair)
                    replies.append(_status("success", f"unsubscribed to: {param}"))
        else:
            return [_status("error", f"unknown action: {action!r}")]
        # Data flows to authenticated clients only (a failed re-auth stops it).
        session.streaming = session.authenticated and (session.everything or bool(session.symbols))
        return replies

    def encode(self, record: Record) -> Frame:
        pair = self._symbol(str(record.get("pair")))
        event = {
            "ev": "C",
            "p": pair,
            "x": MASSIVE_EXCHANGE,
            "a": _number(record, "ask"),
            "b": _number(record, "bid"),
            "t": _millis(record),
        }
        return Frame(pair, _dumps([event]))


def _status(status: str, message: str) -> str:
    return _dumps([{"ev": "status", "status": status, "message": message}])


VENUES: dict[str, type[VenueProtocol]] = {
    "native": NativeVenue,
    "binance": BinanceVenue,
    "hyperliquid": HyperliquidVenue,
    "massive": MassiveVenue,
}


def make_venue(settings: FeedSettings) -> VenueProtocol:
    return VENUES[settings.protocol](settings)


class Router:
    """Which feeds serve a scenario value; counts what no feed serves.

    A quote of venue V goes to every quote feed of V whose symbol map names its
    instrument (a native feed with no map takes every instrument). An fx pair goes to
    every Massive feed that maps it, else to the first native feed by name, so each
    pair reaches Kafka once. ``warnings`` collects one message per unserved venue or
    pair for the caller to log.
    """

    def __init__(self, feeds: Mapping[str, FeedSettings]) -> None:
        self._feeds = dict(sorted(feeds.items()))
        self._cache: dict[tuple[str, str, str], tuple[str, ...]] = {}
        # Values that are not a quote (with venue and instrument) or an fx (with a pair).
        self.not_records = 0
        self.unserved: Counter[str] = Counter()  # "venue X" / "pair P" -> records skipped
        self.warnings: list[str] = []

    def route(self, value: Any) -> tuple[str, ...]:
        key = _route_key(value)
        if key is None:
            self.not_records += 1
            return ()
        names = self._cache.get(key)
        if names is None:
            names = self._cache[key] = self._feeds_for(*key)
        if not names:
            what = f"venue {key[1]}" if key[0] != "fx" else f"pair {key[2]}"
            self.unserved[what] += 1
            if self.unserved[what] == 1:
                detail = f" instrument {key[2]}" if key[0] != "fx" else ""
                self.warnings.append(f"no feed serves {what}{detail}: its records are skipped")
        return names

    def _feeds_for(self, kind: str, venue: str, name: str) -> tuple[str, ...]:
        feeds = self._feeds.items()
        if kind == "stock":  # only a bridge (native) carries stock reports
            return tuple(
                feed_name
                for feed_name, s in feeds
                if s.protocol == "native"
                and s.venue == venue
                and (name in s.symbols.values() or not s.symbols)
            )
        if kind == "status":  # a bridge, or Binance's contract status (docs/venues.md)
            return tuple(
                feed_name
                for feed_name, s in feeds
                if s.protocol in ("native", "binance")
                and s.venue == venue
                and (name in s.symbols.values() or (s.protocol == "native" and not s.symbols))
            )
        if kind == "quote":
            return tuple(
                feed_name
                for feed_name, s in feeds
                if s.protocol in QUOTE_PROTOCOLS
                and s.venue == venue
                and (name in s.symbols.values() or (s.protocol == "native" and not s.symbols))
            )
        massive = tuple(
            n for n, s in feeds if s.protocol == "massive" and name in s.symbols.values()
        )
        if massive:
            return massive
        native = [n for n, s in feeds if s.protocol == "native"]
        return tuple(native[:1])


def _route_key(value: Any) -> tuple[str, str, str] | None:
    """("quote" | "stock" | "status", venue, instrument) or ("fx", "", pair); None if it
    cannot be routed."""
    if not isinstance(value, dict):
        return None
    kind = value.get("type")
    if kind in ("quote", "stock", "status"):
        venue, instrument = value.get("venue"), value.get("instrument")
        if isinstance(venue, str) and isinstance(instrument, str) and venue and instrument:
            return (kind, venue, instrument)
    elif kind == "fx":
        pair = value.get("pair")
        if isinstance(pair, str) and pair:
            return ("fx", "", pair)
    return None
