"""The engine's tests run the implementation they say they run. ``make test`` runs
tests/streams twice: on the compiled modules, then with ``ARBSTREAM_ENGINE=python`` on
the sources (tests/test_compiled_engine.py tests the build and the choice)."""

from __future__ import annotations

import importlib
import os

from arbstream import streams
from arbstream.streams import _native

PURE = os.environ.get("ARBSTREAM_ENGINE") == "python"


def test_the_tests_run_the_implementation_they_say_they_run() -> None:
    # the modules the build compiled (setup.py records them): make install compiles them
    compiled = importlib.import_module("arbstream.streams._build").SOURCES
    assert len(compiled) == 15, compiled  # setup.py's COMPILED
    loaded = {name: _native.loaded(importlib.import_module(name)) for name in compiled}
    if PURE:
        assert not streams.IMPLEMENTATION.compiled
        assert set(loaded.values()) == {"source"}, loaded
    else:
        # make install compiles the engine; a run without it is not the engine CI ships
        assert streams.IMPLEMENTATION.compiled, streams.IMPLEMENTATION.reason
        assert set(loaded.values()) == {"compiled"}, loaded
