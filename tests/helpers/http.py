"""One way for the tests to ask a process's HTTP endpoints (``/healthz``, ``/readyz``,
``/metrics``, a gateway's page and session): GET a URL, get its status and body,
whatever the status."""

from __future__ import annotations

import ssl
import urllib.error
import urllib.request
from typing import Any

import orjson

from helpers.kafka import scaled


def get(
    url: str,
    timeout_s: float = 10.0,
    headers: dict[str, str] | None = None,
    context: ssl.SSLContext | None = None,
) -> tuple[int, bytes]:
    """(status, body) of GET ``url``; an error status is an answer too. OSError when
    nothing answers."""
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=scaled(timeout_s), context=context) as r:
            return int(r.status), bytes(r.read())
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def get_json(url: str, timeout_s: float = 10.0) -> tuple[int, Any]:
    """(status, JSON body) of GET ``url``."""
    status, body = get(url, timeout_s)
    return status, orjson.loads(body)


def get_text(url: str, timeout_s: float = 10.0) -> str:
    """The body of GET ``url``, which must answer 200."""
    status, body = get(url, timeout_s)
    assert status == 200, (url, status, body[:300])
    return body.decode()
