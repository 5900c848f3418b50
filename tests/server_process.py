"""A real ``tms-server`` subprocess for tests that need one (logs, signals, kill -9, outages).

``ServerProcess`` starts ``python -m tms_server.server`` on a free loopback port against a given
database URL, waits for ``/healthz``, and stops it (SIGTERM, or SIGKILL). Its stdout and stderr go
to one file, so a test can read every line the process wrote.
"""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def http_status(url: str, timeout: float = 5.0) -> int:
    """The status of a GET, 4xx/5xx included; raises OSError when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310  # our own http URL
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def wait_healthy(url: str, timeout: float = 30.0, proc: subprocess.Popen[bytes] | None = None) -> None:
    """Poll ``url/healthz`` until it answers 200; fail early if ``proc`` exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before it was healthy")
        try:
            if http_status(f"{url}/healthz", timeout=1.0) == 200:
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} did not become healthy within {timeout} s")


class ServerProcess:
    """One ``tms-server`` process (or supervisor, with ``--workers``) on a free port."""

    def __init__(
        self, dsn: str, log_path: Path, args: Sequence[str] = (), *, nofile: int | None = None, **env: str
    ) -> None:
        """``args`` go to ``tms-server``, ``env`` over the defaults below; ``nofile`` sets the
        process's own soft open-files limit."""
        self.nofile = nofile
        self.port = free_port()
        self.url = f"http://{LOOPBACK}:{self.port}"
        self.log_path = log_path
        self.args = list(args)
        self.env = {
            **os.environ,
            "TMS_DATABASE_URL": dsn,
            "TMS_HOST": LOOPBACK,
            "TMS_PORT": str(self.port),
            "TMS_LOG_FORMAT": "json",
            "TMS_LOG_LEVEL": "INFO",
            "TMS_REFRESH_INTERVAL": "0.2",
            "TMS_AUTO_MIGRATE": "0",
            **env,
        }
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        """The server's (or supervisor's) process id."""
        assert self.proc is not None, "not started"
        return self.proc.pid

    def start(self, timeout: float = 30.0) -> ServerProcess:
        """Start the process and wait until /healthz answers."""
        with self.log_path.open("ab") as log:  # the child keeps its own copy of the descriptor
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "tms_server.server", *self.args],
                env=self.env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                preexec_fn=None if self.nofile is None else self._limit_open_files,
            )  # fmt: skip
        try:
            wait_healthy(self.url, timeout, self.proc)
        except RuntimeError:
            self.kill()
            raise RuntimeError(f"server did not start; log tail:\n{self.log_text()[-3000:]}") from None
        return self

    def _limit_open_files(self) -> None:
        """Runs in the child before exec: the soft open-files limit becomes ``nofile``."""
        assert self.nofile is not None
        resource.setrlimit(
            resource.RLIMIT_NOFILE, (self.nofile, resource.getrlimit(resource.RLIMIT_NOFILE)[1])
        )

    def log_text(self) -> str:
        """Everything the process wrote so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def signal(self, signum: int) -> None:
        """Send ``signum`` to the process."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signum)

    def wait(self, timeout: float) -> int:
        """Wait for the exit code (raises subprocess.TimeoutExpired)."""
        assert self.proc is not None, "not started"
        return int(self.proc.wait(timeout))

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait for a graceful exit (SIGKILL after ``timeout``); the exit code."""
        if self.proc is None:
            return 0
        self.signal(signal.SIGTERM)
        try:
            return self.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise

    def kill(self) -> None:
        """kill -9: no cleanup, no graceful shutdown."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(10)

    def __enter__(self) -> ServerProcess:
        return self.start() if self.proc is None else self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        # Never leave a server behind, whatever the test did.
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.stop(20)
        self.kill()


def raise_fd_limit(want: int) -> int:
    """Raise this process's soft open-files limit towards ``want`` (children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        return target
    return soft if soft != resource.RLIM_INFINITY else want
