"""Who may read the gateway: tokens, sessions, Origins, and limits on those who fail.

* **Tokens.** ``ARBSTREAM_GATEWAY_TOKENS_FILE`` holds one client per line, ``NAME
  sha256:HEX``: the SHA-256 of the client's token, so the file holds no secret.
  ``new_token`` makes a token and its line. A request authenticates with
  ``Authorization: Bearer TOKEN`` or the session cookie of the page's sign-in; the
  token's digest is compared with every line's in constant time.
* **Sessions.** The page exchanges a token for a random session id, kept in memory
  (``SESSION_TTL_S``), sent back as an HttpOnly, SameSite=Strict cookie (Secure under
  TLS). A token removed from the file ends its sessions and its connections.
* **Origins.** A browser names the page that opens a WebSocket in ``Origin``: any other
  page than the gateway's own, or one of ``ARBSTREAM_GATEWAY_ORIGINS``, is refused, so
  that a page a trader visits cannot read the stream through the trader's browser.
* **Failures.** An address that fails to authenticate ``FAILURES_PER_WINDOW`` times in
  ``FAILURE_WINDOW_S`` is refused (429) until the window has moved on.

Nothing here logs or keeps a token.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from arbstream.streams.errors import SetupError

#: The cookie of a signed-in page, and how long a session lasts.
COOKIE = "arbstream_session"
SESSION_TTL_S = 12 * 3600.0
#: Failed authentications one address may make in a window before it is refused.
FAILURES_PER_WINDOW = 10
FAILURE_WINDOW_S = 60.0
#: Addresses whose failures are remembered at once (the oldest are forgotten first).
MAX_TRACKED = 10_000
NAME = re.compile(r"^[A-Za-z0-9._@-]{1,64}$")
LINE = re.compile(r"^(\S+)\s+sha256:([0-9a-f]{64})$")


def digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


def new_token(name: str) -> tuple[str, str]:
    """A new random token for client ``name``, and the line of the tokens file that
    lets it in."""
    if not NAME.match(name):
        raise SetupError(f"token name {name!r}: 1 to 64 letters, digits, '.', '_', '@' or '-'")
    token = secrets.token_urlsafe(32)
    return token, f"{name} sha256:{digest(token).hex()}"


@dataclass(frozen=True)
class Principal:
    """Who a request is: the client's name and the digest of its token (None when the
    gateway serves openly)."""

    name: str
    token: bytes | None = None


OPEN = Principal("open")


class TokenBook:
    """The clients of a tokens file."""

    def __init__(self, entries: dict[str, bytes], source: str) -> None:
        self.entries = entries  # name -> SHA-256 digest of its token
        self.source = source

    @classmethod
    def load(cls, path: Path) -> TokenBook:
        """Read ``path``; raise SetupError naming the file (and line) that cannot be
        used. Blank lines and ``#`` comments are skipped."""
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            why = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise SetupError(f"ARBSTREAM_GATEWAY_TOKENS_FILE: cannot read {path}: {why}") from None
        entries: dict[str, bytes] = {}
        for n, raw in enumerate(text.splitlines(), start=1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            match = LINE.match(line)
            if match is None or not NAME.match(match.group(1)):
                raise SetupError(
                    f"ARBSTREAM_GATEWAY_TOKENS_FILE: {path}:{n}: expected 'NAME sha256:HEX' "
                    "(arbstream gateway token NAME prints one)"
                )
            name = match.group(1)
            if name in entries:
                raise SetupError(f"ARBSTREAM_GATEWAY_TOKENS_FILE: {path}:{n}: {name} again")
            entries[name] = bytes.fromhex(match.group(2))
        return cls(entries, str(path))

    def authenticate(self, token: str) -> Principal | None:
        """The client whose token this is, or None; every line is compared, in constant
        time, whichever matches."""
        given = digest(token)
        found = None
        for name, stored in self.entries.items():
            if hmac.compare_digest(given, stored):
                found = Principal(name, stored)
        return found

    def holds(self, principal: Principal) -> bool:
        """Whether ``principal``'s token is still in the book (not removed, not changed)."""
        stored = self.entries.get(principal.name)
        return (
            stored is not None
            and principal.token is not None
            and (hmac.compare_digest(stored, principal.token))
        )


class Sessions:
    """Signed-in pages: a random id per sign-in, for ``SESSION_TTL_S``."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._sessions: dict[str, tuple[Principal, float]] = {}

    def open(self, principal: Principal) -> str:
        self._expire()
        session = secrets.token_urlsafe(32)
        self._sessions[session] = (principal, self._clock() + SESSION_TTL_S)
        return session

    def get(self, session: str) -> Principal | None:
        found = self._sessions.get(session)
        if found is None or found[1] < self._clock():
            self._sessions.pop(session, None)
            return None
        return found[0]

    def close(self, session: str) -> None:
        self._sessions.pop(session, None)

    def keep_only(self, valid: Callable[[Principal], bool]) -> None:
        """End the sessions of principals no longer ``valid`` (tokens removed)."""
        self._sessions = {s: v for s, v in self._sessions.items() if valid(v[0])}

    def __len__(self) -> int:
        return len(self._sessions)

    def _expire(self) -> None:
        now = self._clock()
        self._sessions = {s: v for s, v in self._sessions.items() if v[1] >= now}


class FailureLimiter:
    """Failed authentications per remote address, in a sliding window."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}

    def blocked(self, address: str) -> bool:
        failures = self._failures.get(address)
        if failures is None:
            return False
        horizon = self._clock() - FAILURE_WINDOW_S
        while failures and failures[0] < horizon:
            failures.popleft()
        if not failures:
            del self._failures[address]
            return False
        return len(failures) >= FAILURES_PER_WINDOW

    def failed(self, address: str) -> None:
        if address not in self._failures and len(self._failures) >= MAX_TRACKED:
            self._failures.pop(next(iter(self._failures)))
        self._failures.setdefault(address, deque()).append(self._clock())


def parse_origins(raw: str) -> frozenset[str]:
    """``ARBSTREAM_GATEWAY_ORIGINS``: comma-separated ``scheme://host[:port]``."""
    origins = set()
    for part in (p.strip() for p in raw.split(",")):
        if not part:
            continue
        url = urlsplit(part)
        if url.scheme not in ("http", "https") or not url.netloc or url.path not in ("", "/"):
            raise SetupError(
                f"ARBSTREAM_GATEWAY_ORIGINS: {part!r} is not an origin "
                "(scheme://host[:port], e.g. https://desk.example.com)"
            )
        origins.add(f"{url.scheme}://{url.netloc}".lower())
    return frozenset(origins)


def origin_allowed(origin: str | None, own: str, allowed: Iterable[str]) -> bool:
    """A request without ``Origin`` (not from a browser page) is allowed; one from the
    gateway's own origin or a listed one is too; any other page is not."""
    if origin is None:
        return True
    origin = origin.strip().lower()
    return origin == own.lower() or origin in allowed
