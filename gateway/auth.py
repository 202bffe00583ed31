"""What a request to the gateway must show (gateway/access.py has the parts): its Origin,
then, when the gateway has a tokens file, a token or a signed-in page's session. The
refusals are answered before any upgrade or stream, and counted by reason for
``/metrics``; none of them logs or echoes a credential.

``/session`` is the page's sign-in: GET says whether the page is signed in, POST
exchanges a token for the session cookie, DELETE signs out.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable
from typing import Any, NoReturn

import orjson
from aiohttp import web

from arbstream.gateway.access import (
    COOKIE,
    OPEN,
    SESSION_TTL_S,
    FailureLimiter,
    Principal,
    Sessions,
    TokenBook,
    origin_allowed,
)

log = logging.getLogger(__name__)

#: The reasons a request is refused, as ``arbstream_gateway_refused_total`` labels them.
REASONS = (
    "origin",
    "no_credentials",
    "bad_token",
    "bad_session",
    "rate_limited",
    "full",
    "client_full",
)
#: The largest sign-in request body.
MAX_SIGN_IN_BYTES = 4096


class RequestAuth:
    """The gateway's checks of who is asking, and what it refused."""

    def __init__(self, book: TokenBook | None, origins: Iterable[str], tls: bool) -> None:
        self.book = book  # None: the gateway serves without tokens
        self.origins = frozenset(origins)
        self.tls = tls
        self.sessions = Sessions()
        self.limiter = FailureLimiter()
        self.refused: Counter[str] = Counter({reason: 0 for reason in REASONS})

    @property
    def tokens(self) -> bool:
        """Whether requests need a token (a tokens file was given)."""
        return self.book is not None

    def own_origin(self, request: web.Request) -> str:
        return f"{'https' if self.tls else 'http'}://{request.host}"

    def refuse(self, reason: str, status: int, text: str, body: Any = None) -> NoReturn:
        """Count the refusal and answer it (before any upgrade or stream): ``text``, or
        the JSON ``body``."""
        self.refused[reason] += 1
        headers = {"WWW-Authenticate": 'Bearer realm="arbstream"'} if status == 401 else None
        if body is None:
            raise _ERRORS[status](text=f"{text}\n", headers=headers)
        raise _ERRORS[status](
            body=orjson.dumps(body), content_type="application/json", headers=headers
        )

    def check_origin(self, request: web.Request) -> None:
        if not origin_allowed(
            request.headers.get("Origin"), self.own_origin(request), self.origins
        ):
            self.refuse("origin", 403, "this origin may not use the gateway")

    def admit(self, request: web.Request) -> Principal:
        """Who ``request`` is; refuses it (403, 429, 401) if it may not come in."""
        self.check_origin(request)
        book = self.book
        if book is None:
            return OPEN
        address = request.remote or "?"
        if self.limiter.blocked(address):
            self.refuse("rate_limited", 429, "too many failed authentications; try later")
        token = _bearer(request)
        if token is not None:
            principal = book.authenticate(token)
            if principal is None:
                self.limiter.failed(address)
                log.warning("gateway: a request from %s with an unknown token refused", address)
                self.refuse("bad_token", 401, "unknown token")
            return principal
        session = request.cookies.get(COOKIE)
        if session:
            principal = self.sessions.get(session)
            if principal is not None and book.holds(principal):
                return principal
            self.limiter.failed(address)
            self.refuse("bad_session", 401, "the session has ended: sign in again")
        self.refuse("no_credentials", 401, "a token is required (Authorization: Bearer TOKEN)")

    def reload(self, book: TokenBook) -> None:
        """A new tokens file (SIGHUP): the sessions of removed tokens end."""
        self.book = book
        self.sessions.keep_only(book.holds)

    # -- the page's sign-in: /session -------------------------------------------------

    async def session(self, request: web.Request) -> web.Response:
        """GET: 200 with the client's name when signed in (or the gateway is open),
        401 otherwise."""
        if self.book is None:
            return web.json_response({"auth": "none"})
        session = request.cookies.get(COOKIE)
        principal = self.sessions.get(session) if session else None
        if principal is None or not self.book.holds(principal):
            return web.json_response({"auth": "token"}, status=401)
        return web.json_response({"auth": "token", "client": principal.name})

    async def sign_in(self, request: web.Request) -> web.Response:
        """POST ``{"token": "..."}``: the session cookie, for the client of that token."""
        self.check_origin(request)
        if self.book is None:
            return web.json_response({"auth": "none"})
        address = request.remote or "?"
        if self.limiter.blocked(address):
            self.refuse("rate_limited", 429, "too many failed authentications; try later")
        body = await request.content.read(MAX_SIGN_IN_BYTES + 1)
        token = _token_of(body)
        principal = None if token is None else self.book.authenticate(token)
        if principal is None:
            self.limiter.failed(address)
            log.warning("gateway: a sign-in from %s with an unknown token refused", address)
            self.refuse("bad_token", 401, "unknown token", {"auth": "token"})
        response = web.json_response({"auth": "token", "client": principal.name})
        response.set_cookie(
            COOKIE,
            self.sessions.open(principal),
            max_age=int(SESSION_TTL_S),
            path="/",
            httponly=True,
            secure=self.tls,
            samesite="Strict",
        )
        log.info("gateway: %s signed in from %s", principal.name, address)
        return response

    async def sign_out(self, request: web.Request) -> web.Response:
        """DELETE: the session ends and its cookie is cleared."""
        self.check_origin(request)
        session = request.cookies.get(COOKIE)
        if session:
            self.sessions.close(session)
        response = web.Response(status=204)
        response.del_cookie(COOKIE, path="/")
        return response


_ERRORS: dict[int, type[web.HTTPException]] = {
    401: web.HTTPUnauthorized,
    403: web.HTTPForbidden,
    429: web.HTTPTooManyRequests,
    503: web.HTTPServiceUnavailable,
}


def _bearer(request: web.Request) -> str | None:
    """The token of an ``Authorization: Bearer TOKEN`` header (None without one; an
    empty string for a malformed one, which no book holds)."""
    header = request.headers.get("Authorization")
    if header is None:
        return None
    scheme, _, token = header.strip().partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def _token_of(body: bytes) -> str | None:
    if len(body) > MAX_SIGN_IN_BYTES:
        return None
    try:
        data: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    token = data.get("token") if isinstance(data, dict) else None
    return token if isinstance(token, str) and token else None
