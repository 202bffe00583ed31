"""A throwaway server process for the tests (Prometheus, Alertmanager): its own
temporary directory, its output in a log there, ready when ``/-/ready`` answers 200,
stopped with SIGTERM (SIGKILL after a timeout) and its directory deleted."""

from __future__ import annotations

import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType

from helpers.kafka import free_port, scaled


class ServerProcess:
    """The lifecycle both servers share; a subclass's ``__enter__`` writes its files into
    ``workdir()`` and calls ``launch`` with its command line."""

    #: The server's name in errors and in its log's header.
    NAME = "server"

    def __init__(self, *, port: int, start_timeout_s: float, stop_timeout_s: float) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._start_timeout_s = start_timeout_s
        self._stop_timeout_s = stop_timeout_s
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_path: Path | None = None

    def workdir(self) -> Path:
        """A new temporary directory for this run's config, data and log."""
        self._tmp = tempfile.TemporaryDirectory(prefix=f"arbstream-{self.NAME}-")
        return Path(self._tmp.name)

    def launch(self, args: list[str], root: Path, cwd: Path) -> None:
        """Start ``args`` (output to ``root``'s log) and return once it is ready; stop it
        and raise if it exits or is not ready in time."""
        self._log_path = root / f"{self.NAME}.log"
        with self._log_path.open("wb") as log:
            self._proc = subprocess.Popen(
                args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=cwd
            )
        try:
            self._wait_ready()
        except BaseException:
            self._stop()
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop()

    def _wait_ready(self) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + scaled(self._start_timeout_s)
        while True:
            code = self._proc.poll()
            if code is not None:
                raise RuntimeError(f"{self.NAME} exited with code {code} at start\n{self.log()}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{self.NAME} not ready on {self.url} within "
                    f"{scaled(self._start_timeout_s):.0f} s\n{self.log()}"
                )
            time.sleep(0.05)

    def _stop(self) -> None:
        proc, self._proc = self._proc, None
        try:
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=scaled(self._stop_timeout_s))
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=scaled(10))
        finally:
            tmp, self._tmp = self._tmp, None
            if tmp is not None:
                tmp.cleanup()

    def log(self) -> str:
        """The server's output so far (empty once the server is stopped)."""
        if self._log_path is None or not self._log_path.exists():
            return ""
        return f"--- {self.NAME} log ---\n{self._log_path.read_text(errors='replace')}"
