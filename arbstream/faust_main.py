"""The Faust runtime for Faust's own command line::

    ARBSTREAM_CONFIG=config.toml ARBSTREAM_BROKER=kafka://host:9092 \\
        faust -A arbstream.faust_main worker --web-port 8000

The config comes from ``ARBSTREAM_CONFIG``, the broker from ``ARBSTREAM_BROKER`` (and
how to authenticate from the ``ARBSTREAM_KAFKA_*`` variables, docs/config.md), the web
port from ``ARBSTREAM_WEB_PORT`` (Faust's ``--web-port`` overrides it). Importing
this module makes the topics (as ``arbstream worker`` does) and builds ``app``.
"""

from __future__ import annotations

import atexit
import os
import sys
from contextlib import ExitStack

from arbstream.agents.kafka.clients import kafka_clients
from arbstream.agents.settings import WorkerSettings, web_port
from arbstream.config import load_config
from arbstream.faust_process import faust_app
from arbstream.streams.errors import ArbstreamError


def _app() -> object:
    try:
        path = os.environ.get("ARBSTREAM_CONFIG")
        if not path:
            sys.exit("arbstream: ARBSTREAM_CONFIG is not set (the config file's path)")
        config = load_config(path)
        settings = WorkerSettings(kafka=kafka_clients(), web_port=web_port())
        app, _ = _stack.enter_context(faust_app(config, settings))
    except ArbstreamError as exc:
        sys.exit(f"arbstream: {exc}")
    return app


#: Removes the app's data directory when the process exits.
_stack = ExitStack()
atexit.register(_stack.close)
app = _app()
