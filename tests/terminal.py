"""A command in a pseudo-terminal, as a person runs it: its output as the terminal shows
it, keys typed at it (Ctrl-C is delivered by the terminal as SIGINT), and its exit."""

from __future__ import annotations

import contextlib
import os
import pty
import select
import signal
import time
from collections.abc import Callable
from pathlib import Path


class Terminal:
    def __init__(self, argv: list[str], env: dict[str, str], cwd: Path) -> None:
        pid, fd = pty.fork()
        if pid == 0:  # the child: the terminal is its controlling terminal
            os.chdir(cwd)
            os.execvpe(argv[0], argv, env)
        self.pid, self._fd = pid, fd
        self.output = ""
        self.exit_code: int | None = None

    def read_until(self, done: Callable[[str], bool], timeout: float, what: str) -> str:
        deadline = time.monotonic() + timeout
        while not done(self.output):
            # `done` is asked again: the process may have exited (what `wait` waits for)
            # since it was asked above.
            if self._exited() and not self._read(0) and not done(self.output):
                raise AssertionError(f"exited ({self.exit_code}) before {what}:\n{self.output}")
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout}s waiting for {what}:\n"
                                     f"{self.output[-3000:]}")
            self._read(0.1)
        return self.output

    def type(self, keys: bytes) -> None:
        os.write(self._fd, keys)

    def wait(self, timeout: float) -> int:
        self.read_until(lambda _: self._exited(), timeout, "the exit")
        self._drain()
        assert self.exit_code is not None
        return self.exit_code

    def close(self) -> None:
        if not self._exited():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        os.close(self._fd)

    def _drain(self) -> None:
        """Keep what the child wrote before it exited and has not been read yet."""
        more = True
        while more:
            more = self._read(0)

    def _read(self, timeout: float) -> bool:
        ready, _, _ = select.select([self._fd], [], [], timeout)
        if not ready:
            return False
        try:
            chunk = os.read(self._fd, 65536)
        except OSError:  # EIO: the child closed the terminal
            return False
        self.output += chunk.decode(errors="replace")
        return bool(chunk)

    def _exited(self) -> bool:
        if self.exit_code is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.exit_code = os.waitstatus_to_exitcode(status)
        return self.exit_code is not None
