"""The ComfyUI child never outlives the process that supervises it.

- *Dies with its parent.* The child asks the kernel (`prctl(PR_SET_PDEATHSIG, SIGKILL)`,
  Linux) to kill it as soon as its parent ends, however that ends: SIGKILL, a crash, or a
  stop that escalated to SIGKILL while the worker was still draining. So it never keeps
  its port, its memory or its GPU as an orphan.
- *A pidfile in its state folder.* Where the kernel cannot help (another OS, or a child
  started by an older version), the next start reads `comfyui.pid`, checks that the
  process is really the ComfyUI it started (its command line names `main.py`, the recorded
  port and this state folder's output directory) and ends its process group before it
  starts a new one. A pid that was reused by anything else is left alone.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import itertools
import json
import logging
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ChildRecord", "die_with_parent", "end_stale_child"]

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1
_STALE_EXIT_SECONDS = 10.0


def die_with_parent() -> Callable[[], None] | None:
    """A `preexec_fn` that makes the child die with this process (None off Linux)."""
    library = ctypes.util.find_library("c")
    if not library or not Path("/proc/self").exists():
        return None
    prctl = ctypes.CDLL(library, use_errno=True).prctl
    parent = os.getpid()

    def in_child() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return in_child


@dataclass(frozen=True)
class ChildRecord:
    """What a start writes about its ComfyUI child, to recognise it at the next start."""

    pidfile: Path
    port: int
    output_dir: Path

    def write(self, pid: int) -> None:
        self.pidfile.write_text(json.dumps({"pid": pid, "port": self.port}))

    def clear(self) -> None:
        self.pidfile.unlink(missing_ok=True)

    def recorded_pid(self) -> int | None:
        with contextlib.suppress(OSError, ValueError, TypeError, KeyError):
            record = json.loads(self.pidfile.read_text())
            pid, port = int(record["pid"]), int(record["port"])
            return pid if _is_our_comfyui(pid, port, self.output_dir) else None
        return None


def end_stale_child(record: ChildRecord) -> int | None:
    """End the ComfyUI that an earlier start left running; its pid, or None if none was."""
    pid = record.recorded_pid()
    if pid is not None:
        log.warning("ending ComfyUI (pid %s) left running by an earlier start", pid)
        _signal_group(pid, signal.SIGTERM)
        if not _wait_gone(pid, _STALE_EXIT_SECONDS):
            _signal_group(pid, signal.SIGKILL)
            _wait_gone(pid, _STALE_EXIT_SECONDS)
    record.clear()
    return pid


def _is_our_comfyui(pid: int, port: int, output_dir: Path) -> bool:
    try:
        arguments = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    words = [word.decode(errors="replace") for word in arguments]
    return (not _is_zombie(pid) and "main.py" in words
            and _follows(words, "--port", str(port))
            and _follows(words, "--output-directory", str(output_dir)))


def _follows(words: list[str], flag: str, value: str) -> bool:
    return any(word == flag and following == value
               for word, following in itertools.pairwise(words))


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] == "Z"


def _signal_group(pid: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signum)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signum)


def _wait_gone(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if _is_zombie(pid):
            return True
        time.sleep(0.05)
    return _is_zombie(pid)
