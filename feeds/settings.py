"""The ``[feeds.NAME]`` tables of the config: where quotes come from.

Validated like the rest of the config (strict, unknown keys forbidden) so that a feed
with a misspelled option stops ``arbstream feed`` before it opens a socket. The models
are pure data; ``feeds.connection`` turns them into connections. API keys never appear
here: a feed names the *environment variable* that holds its key (``api_key_env``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Literal

from pydantic import Field

from arbstream.streams.config import EngineConfig, Section
from arbstream.streams.validation import NAME_LIMIT

#: The WebSocket protocols a feed can speak (docs/venues.md).
FeedProtocol = Literal["native", "binance", "hyperliquid", "massive"]
#: Protocols whose records are quotes of one venue (``massive`` yields fx records).
QUOTE_PROTOCOLS = frozenset({"native", "binance", "hyperliquid"})

PositiveSeconds = Annotated[float, Field(gt=0, allow_inf_nan=False)]
_PAIR = re.compile(r"^USD[A-Z]{3}$")
_FEED_NAME = re.compile(r"^[A-Za-z0-9_-]+$")


class FeedSettings(Section):
    """One WebSocket connection to one venue (or FX source)."""

    protocol: FeedProtocol
    url: Annotated[str, Field(pattern=r"^wss?://[^\s/?#]+(/\S*)?$")]
    #: The venue name put on records (a ``[venues]`` key); not used by fx protocols.
    venue: str | None = None
    #: Venue symbol -> arbstream instrument (or fx pair for ``massive``: "USD/CNY" -> "USDCNY").
    #: The feed subscribes to the keys; for ``native`` an empty map passes names through.
    symbols: dict[str, Annotated[str, Field(min_length=1)]] = Field(default_factory=dict)
    #: Name of the environment variable holding the API key (never the key itself).
    api_key_env: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")] | None = None
    #: No frame for this long: the connection is presumed dead and is replaced.
    idle_timeout_s: PositiveSeconds = 30.0
    #: Keepalive period: the protocol's own ping (Hyperliquid) or a WebSocket ping.
    ping_interval_s: PositiveSeconds = 20.0
    #: Reconnect delays grow exponentially with jitter up to this cap.
    backoff_max_s: PositiveSeconds = 3.0
    #: Handshake (TCP, TLS, HTTP upgrade) must finish within this.
    open_timeout_s: PositiveSeconds = 10.0
    #: Sequence numbers (Binance ``u``, native ``seq``): "contiguous" counts every skipped
    #: number as a gap; "increasing" only rejects numbers that go back (Binance's
    #: ``bookTicker`` skips book update ids by design, so that is its sensible setting).
    sequence: Literal["contiguous", "increasing"] = "increasing"


def feed_problems(feeds: Mapping[str, FeedSettings], venues: Mapping[str, object]) -> list[str]:
    """Cross-field rules pydantic cannot express per field, one line per bad key."""
    problems = []
    for name, feed in feeds.items():
        key = f"feeds.{name}"
        if not _FEED_NAME.match(name):
            problems.append(f"  {key}: a feed name uses only letters, digits, '_' and '-'")
        if feed.protocol in QUOTE_PROTOCOLS:
            if feed.venue is None:
                problems.append(f"  {key}.venue: required for protocol {feed.protocol!r}")
            elif feed.venue not in venues:
                problems.append(f"  {key}.venue: unknown venue {feed.venue!r} (not in [venues])")
        elif feed.venue is not None:
            problems.append(f"  {key}.venue: protocol {feed.protocol!r} carries fx, not quotes")
        if feed.protocol != "native" and not feed.symbols:
            problems.append(
                f"  {key}.symbols: protocol {feed.protocol!r} needs symbols to subscribe"
            )
        if feed.protocol == "massive":
            if feed.api_key_env is None:
                problems.append(f"  {key}.api_key_env: protocol 'massive' needs an API key")
            for symbol, pair in feed.symbols.items():
                if not _PAIR.match(pair):
                    problems.append(
                        f"  {key}.symbols.{symbol}: {pair!r} is not a pair like 'USDCNY'"
                    )
        elif feed.protocol in QUOTE_PROTOCOLS:
            for symbol, instrument in feed.symbols.items():
                if len(instrument) > NAME_LIMIT:
                    problems.append(
                        f"  {key}.symbols.{symbol}: an instrument name has at most "
                        f"{NAME_LIMIT} characters"
                    )
    return problems


class FeedsConfig(EngineConfig):
    """A config as the feed process and the simulator read it: the engine's settings (it
    is one) and the ``[feeds.*]`` tables. ``arbstream.config.Config``, which reads the
    file, is the one implementation."""

    feeds: Mapping[str, FeedSettings]
