"""``arbstream worker --runtime faust``: the engine as Faust agents (agents/faust_app.py),
run by Faust's own worker, which handles signals, logging and the web server.

``arbstream/faust_main.py`` builds the same app for Faust's command line
(``faust -A arbstream.faust_main worker``).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from arbstream.agents.faust_app import FaustRuntime, make_app
from arbstream.agents.kafka.roles import faust_rights
from arbstream.agents.kafka.topics import Topics, prepare
from arbstream.agents.settings import Deployment, WorkerSettings
from arbstream.process import require_free_port


@contextmanager
def faust_app(config: Deployment, settings: WorkerSettings) -> Iterator[tuple[Any, FaustRuntime]]:
    """The app, with its topics made and a data directory that is removed afterwards.
    Raises SetupError when no broker answers, or Kafka refuses the runtime a right."""

    rights = faust_rights(Topics(config.topic_prefix))
    counts = asyncio.run(prepare(settings.kafka, config, rights, "faust"))
    # The tables use Faust's memory store, restored from their changelog topics at start:
    # the directory holds nothing that must outlive the process. One per process, named
    # by its pid, and those of processes that are gone (killed) are removed here.
    base = Path(tempfile.gettempdir()) / "arbstream-faust"
    base.mkdir(exist_ok=True)
    for old in base.iterdir():
        if old.name.isdigit() and not _alive(int(old.name)):
            shutil.rmtree(old, ignore_errors=True)
    datadir = str(base / str(os.getpid()))
    try:
        yield make_app(
            config, counts, settings.kafka, settings.web_host, settings.web_port, datadir
        )
    finally:
        shutil.rmtree(datadir, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's
    return True


def run_faust_worker(config: Deployment, settings: WorkerSettings, loglevel: str) -> None:
    """Run the Faust runtime until SIGINT/SIGTERM (Faust's worker stops the agent between
    batches; what was not committed is done again by the partition's next owner)."""
    import faust  # noqa: PLC0415  (only this runtime needs Faust)

    require_free_port(settings.web_host, settings.web_port, "ARBSTREAM_WEB_PORT")
    with faust_app(config, settings) as (app, _):
        worker = faust.Worker(app, loglevel=loglevel, redirect_stdouts=False)
        sys.argv = sys.argv[:1]  # Faust's worker reads no arbstream options
        worker.execute_from_commandline()
