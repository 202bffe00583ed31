"""Which implementation of the engine's modules this process runs: the native modules
mypyc compiled from these same sources (``make install``, ``pip install .``), or the
Python sources themselves.

The build records the SHA-256 of each source it compiled in ``streams/_build.py`` (not
in git). Compiled modules are used only when every recorded source is unchanged. After an
edit in a development checkout (an editable install keeps its compiled modules beside the
sources), with ``ARBSTREAM_ENGINE=python``, or where nothing was compiled, a finder first
on ``sys.meta_path`` loads every compiled module from its ``.py`` file instead: a stale
compiled module never shadows edited source, and compiled and source modules are never
mixed (compiled modules call each other directly).

The one module of ``streams`` that reads files and the environment: it runs once, when
the package is first imported, before any engine module.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Implementation:
    compiled: bool
    reason: str  # why the Python sources run ('' when compiled)


class _SourceFinder(importlib.abc.MetaPathFinder):
    """Finds the listed modules' ``.py`` files, ahead of their compiled twins."""

    def __init__(self, sources: dict[str, Path]) -> None:
        self.sources = sources

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        source = self.sources.get(fullname)
        if source is None:
            return None
        return importlib.util.spec_from_file_location(fullname, source)


def _recorded() -> tuple[dict[str, str], str]:
    try:  # by name: the module exists only once setup.py has run
        build = importlib.import_module(f"{__package__}._build")
    except ImportError:
        return {}, "not built by setup.py (a source checkout on the path)"
    sources: dict[str, str] = build.SOURCES
    return sources, str(build.REASON)


def select() -> Implementation:
    """Choose, once, before any compiled module is imported; return the choice."""
    sources, reason = _recorded()
    if os.environ.get("ARBSTREAM_ENGINE") == "python":
        reason = "ARBSTREAM_ENGINE=python"
    elif sources:
        changed = [
            name
            for name, digest in sorted(sources.items())
            if hashlib.sha256(_source(name).read_bytes()).hexdigest() != digest
        ]
        spec = importlib.util.find_spec(f"{__package__}.engine")
        if changed:
            reason = f"{', '.join(changed)} changed since the build (run `make install`)"
        elif spec is None or str(spec.origin).endswith(".py"):
            reason = "the compiled modules are missing (run `make install`)"
        else:
            return Implementation(True, "")
    finder = _SourceFinder({name: _source(name) for name in sources})
    if sources and not any(isinstance(f, _SourceFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, finder)
    return Implementation(False, reason or "nothing was compiled")


def _source(module: str) -> Path:
    return HERE / f"{module.rpartition('.')[2]}.py"


def loaded(module: ModuleType) -> str:
    """'compiled' or 'source': what a module of the engine was loaded from."""
    origin = getattr(module, "__file__", "") or ""
    return "source" if origin.endswith(".py") else "compiled"
