"""The ComfyUI child never outlives the process that supervises it.

- *Dies with its parent.* The child asks the kernel (`prctl(PR_SET_PDEATHSIG, SIGKILL)`,
  Linux) to kill it as soon as its parent ends, however that ends: SIGKILL, a crash, or a
  stop that escalated to SIGKILL while the worker was still draining. So it never keeps
  its port, its memory or its GPU as an orphan. A short launcher in the child's own Python
  makes that call and then execs ComfyUI (the setting survives exec), so nothing runs
  between fork and exec in the supervising process, which has threads.
- *A pidfile in its state folder.* Where the kernel cannot help (another OS, or a child
  started by an older version), the next start reads `comfyui.pid`, checks that the
  process is really the ComfyUI it started (its command line names `main.py`, the recorded
  port and this state folder's output directory) and ends its process group before it
  starts a new one. A pid that was reused by anything else is left alone.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ChildRecord", "dying_with_parent", "end_stale_child"]

log = logging.getLogger(__name__)

_STALE_EXIT_SECONDS = 10.0
# argv: the parent's pid, then the command to exec.
_LAUNCHER = (
    "import ctypes, ctypes.util, os, signal, sys\n"
    "libc = ctypes.CDLL(ctypes.util.find_library('c'), use_errno=True)\n"
    "libc.prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG\n"
    "if os.getppid() != int(sys.argv[1]):  # the parent died before prctl took effect\n"
    "    sys.exit(1)\n"
    "os.execv(sys.argv[2], sys.argv[2:])\n"
)


def dying_with_parent(command: list[str]) -> list[str]:
    """`command` (its program first, a Python) started so that it dies with this process;
    unchanged where the kernel has no PR_SET_PDEATHSIG (not Linux)."""
    if not sys.platform.startswith("linux"):
        return command
    return [command[0], "-c", _LAUNCHER, str(os.getpid()), *command]


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
