"""Child processes: start one with its output in a log file, ask it to stop, wait for it
with a deadline, kill what does not stop. The demo, the benchmarks and the tests run
their arbstream processes through this one class.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO


def with_parent_death_signal(args: Sequence[str]) -> list[str]:
    """Prefix ``setpriv --pdeathsig TERM`` where util-linux has it (Linux): the child is
    then stopped if its parent dies (SIGKILL, a crash), so no orphan keeps ports or a
    consumer group. Elsewhere the parent's own stop path is all there is."""
    setpriv = shutil.which("setpriv")
    if setpriv is None or not sys.platform.startswith("linux"):
        return list(args)
    return [setpriv, "--pdeathsig", "TERM", "--", *args]


def arbstream_command(*args: str) -> list[str]:
    """The command line of ``arbstream ARGS...`` run by this interpreter."""
    return [sys.executable, "-m", "arbstream.cli", *args]


class ChildProcess:
    """One started process; its stdout and stderr go to ``log_path`` (appended, or
    ``truncate``d first), or its stdout to a pipe (``pipe_stdout``) for a parent that
    reads what it prints. The log is closed by ``wait``, ``stop`` or ``kill``."""

    def __init__(
        self,
        args: Sequence[str],
        log_path: Path,
        *,
        env: Mapping[str, str] | None = None,
        name: str = "",
        own_session: bool = False,
        parent_death: bool = False,
        pipe_stdout: bool = False,
        cwd: Path | None = None,
        truncate: bool = False,
    ) -> None:
        self.name = name or Path(args[0]).name
        self.log_path = log_path
        self._log: IO[bytes] = open(log_path, "wb" if truncate else "ab")  # noqa: SIM115
        command = with_parent_death_signal(args) if parent_death else list(args)
        self.proc = subprocess.Popen(
            command,
            env=None if env is None else dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if pipe_stdout else self._log,
            stderr=self._log if pipe_stdout else subprocess.STDOUT,
            start_new_session=own_session,
            cwd=cwd,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def status(self) -> int | None:
        """The exit status if it has ended (negative: the signal that ended it)."""
        return self.proc.poll()

    def terminate(self) -> None:
        """Ask it to stop (SIGTERM); ``wait_until`` or ``wait`` then waits for it."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def wait_until(self, deadline: float) -> int | None:
        """Its exit status once it has ended, or None if it still runs at ``deadline``
        (``time.monotonic``)."""
        try:
            return self.proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            return None

    def wait(self, timeout_s: float | None = None) -> int:
        """Wait for it to end, killing it after ``timeout_s``; its exit status."""
        status = (
            self.wait_until(time.monotonic() + timeout_s)
            if timeout_s is not None
            else self.proc.wait()
        )
        if status is None:
            self.proc.kill()
            status = self.proc.wait()
        self._log.close()
        return status

    def stop(self, timeout_s: float) -> int:
        """SIGTERM, then SIGKILL if it has not ended within ``timeout_s``; its exit status."""
        self.terminate()
        return self.wait(timeout_s)

    def kill(self) -> int:
        """SIGKILL (no shutdown code runs); its exit status."""
        if self.proc.poll() is None:
            self.proc.kill()
        return self.wait()

    def tail(self, lines: int = 15) -> str:
        """The last lines of its log."""
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])
