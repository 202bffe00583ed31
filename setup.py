"""Builds the engine's hot modules to native code with mypyc, from the same typed sources.

The project's metadata is in pyproject.toml; this file only adds the compiled modules
(``pip install .``, ``make install``, the Docker image). What was compiled, and from
which sources, is recorded in ``arbstream/streams/_build.py``; ``streams/_native.py`` reads it at
import and runs the Python sources instead whenever a compiled module would be stale.

Set ``ARBSTREAM_ENGINE=python`` to build without compiling. A machine without a C
compiler (or without mypyc) gets the pure-Python engine too, with a warning here and a
line at the start of every arbstream command.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path
from typing import Any

from setuptools import setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent
#: The modules of streams/ compiled to native code: the engine's per-record path and its
#: state. Not config.py (pydantic models), observe.py or backoff.py (off the hot path).
COMPILED = (
    "batch",
    "changelog",
    "counters",
    "engine",
    "errors",
    "freshness",
    "halts",
    "market",
    "routes",
    "sessions",
    "signals",
    "spreads",
    "state",
    "validation",
    "windows",
)
#: Where the engine package is, in the source tree (arbstream/streams links to streams/)
#: and in a build: the record and the compiled modules are written and found there.
PACKAGE = Path("arbstream") / "streams"
RECORD = PACKAGE / "_build.py"


def source_digests() -> dict[str, str]:
    digests = {}
    for name in COMPILED:
        source = (ROOT / "streams" / f"{name}.py").read_bytes()
        digests[f"arbstream.streams.{name}"] = hashlib.sha256(source).hexdigest()
    return digests


def write_record(sources: dict[str, str], reason: str, *roots: Path) -> None:
    """Write what this build compiled (``sources``: module -> SHA-256 of its source), or
    why it compiled nothing (``reason``), into ``arbstream/streams/_build.py`` under each
    root."""
    text = (
        '"""Written by setup.py at build time (not in git): what was compiled."""\n\n'
        f"#: Compiled module -> SHA-256 of the source it was compiled from.\n"
        f"SOURCES: dict[str, str] = {sources!r}\n"
        f"#: Why nothing was compiled ('' when SOURCES is not empty).\n"
        f"REASON = {reason!r}\n"
    )
    for root in roots:
        path = root / RECORD
        if path.parent.is_dir():
            path.write_text(text)


class BuildExtOrFallBack(build_ext):
    """build_ext that leaves the pure-Python engine in place when compiling fails."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # no compiler, a compiler error: run from source
            reason = f"compiling the engine failed: {exc}"
            sys.stderr.write(f"WARNING: {reason}; arbstream installs its pure-Python engine\n")
            write_record({}, reason, ROOT, Path(self.build_lib))
            for name in (*COMPILED, "_native__mypyc"):
                for root in (ROOT, Path(self.build_lib)):
                    for built in (root / PACKAGE).glob(f"{name}.*.so"):
                        built.unlink()

    def copy_extensions_to_source(self) -> None:
        super().copy_extensions_to_source()
        write_record(source_digests(), "", ROOT)  # an editable build: record in place


#: setup.py commands that build modules; metadata-only runs skip mypyc's type check.
BUILDS = {"build", "build_ext", "bdist_wheel", "editable_wheel", "develop", "install"}


def ext_modules() -> list[Any]:
    if not BUILDS & set(sys.argv[1:]):
        return []
    if os.environ.get("ARBSTREAM_ENGINE") == "python":
        write_record({}, "built with ARBSTREAM_ENGINE=python", ROOT)
        return []
    try:
        from mypyc.build import mypycify  # noqa: PLC0415  (optional: no mypyc, no compiling)
    except ImportError as exc:
        write_record({}, f"mypyc is not installed: {exc}", ROOT)
        return []
    sources = source_digests()
    modules = mypycify(
        # the project's mypy config covers more than streams/: no notes on the rest
        # by their paths in the arbstream namespace (arbstream/streams links to streams/):
        # mypyc names each module after its path
        ["--no-warn-unused-configs", *(f"arbstream/streams/{name}.py" for name in COMPILED)],
        opt_level="3",
        group_name="arbstream.streams._native",
    )
    write_record(sources, "", ROOT)
    return list(modules)


setup(ext_modules=ext_modules(), cmdclass={"build_ext": BuildExtOrFallBack})
