"""Several API processes on one port (`api_processes`): one Python process is one core's
worth of request handling, so a machine with more cores serves more requests with more
processes, all accepting from one listening socket.

The parent binds the socket, forks the processes and supervises them: it restarts one that
dies (after a pause that grows while they keep dying), gives up and stops them all when
one keeps failing at its start (a configuration error), and on SIGTERM or SIGINT tells
each to stop gracefully (SIGTERM: a terminal's Ctrl-C reaches the children too, and a second
SIGINT would make uvicorn skip its shutdown) and waits for them all.

Only the first process runs the embedded worker (one ComfyUI per machine); the others
answer `/readyz` from its heartbeat. Every process runs the background loops, which are
safe to run in several replicas at once. Per-minute rate limits must be shared, so more
than one process needs Redis (`redis_url`).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from types import FrameType

import uvicorn
from fastapi import FastAPI

from comfy_serverless.api.server import uvicorn_config
from comfy_serverless.settings import Settings

__all__ = ["MakeApp", "serve_processes"]

# make_app(settings, with_worker): the app of one process.
MakeApp = Callable[[Settings, bool], FastAPI]

_FIRST_PAUSE = 0.5
_LONGEST_PAUSE = 30.0
_HEALTHY_AFTER = 60.0  # a process that ran this long resets the pause
_QUICK_FAILURE = 10.0  # a process that ends this soon after its start failed at its start
_QUICK_FAILURES_ALLOWED = 5  # in a row, then the parent gives up
_PR_SET_PDEATHSIG = 1
_STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}


def bound_socket(host: str, port: int) -> socket.socket:
    """The listening socket every process accepts from."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, port))
    listener.listen(2048)
    listener.set_inheritable(True)
    return listener


class _Supervisor:
    def __init__(self, settings: Settings, make_app: MakeApp, listener: socket.socket) -> None:
        self._settings, self._make_app, self._listener = settings, make_app, listener
        self._children: dict[int, int] = {}  # pid -> process index
        self._started_at: dict[int, float] = {}  # index -> when its current process started
        self._pause = _FIRST_PAUSE
        self._quick_failures = 0
        self._stopping = False
        self.failed = False

    def run(self) -> None:
        signal.signal(signal.SIGTERM, self._stop)  # before the first fork: none is orphaned
        signal.signal(signal.SIGINT, self._stop)
        for index in range(self._settings.api_processes):
            if not self._stopping:
                self._start(index)
        while self._children:
            self._reap_one()

    def _start(self, index: int) -> None:
        """Fork process `index`. SIGTERM and SIGINT wait while it forks and is recorded: a
        stop that came in between would miss it, or run the parent's handler in the child."""
        parent = os.getpid()
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
        try:
            pid = os.fork()
            if pid == 0:  # the child: serve until told to stop, never return into our code
                for signum in _STOP_SIGNALS:
                    signal.signal(signum, signal.SIG_DFL)
                signal.pthread_sigmask(signal.SIG_SETMASK, mask)
                os._exit(_serve_child(self._settings, self._make_app, self._listener, index,
                                      parent))
            self._children[pid] = index
            self._started_at[index] = time.monotonic()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)

    def _reap_one(self) -> None:
        try:
            pid, status = os.wait()
        except InterruptedError:
            return
        except ChildProcessError:
            self._children.clear()
            return
        index = self._children.pop(pid, None)
        if index is None or self._stopping:
            return
        ran_for = time.monotonic() - self._started_at[index]
        self._quick_failures = self._quick_failures + 1 if ran_for < _QUICK_FAILURE else 0
        if self._quick_failures >= _QUICK_FAILURES_ALLOWED:
            print(f"comfy-serverless: API process {index} failed at its start "
                  f"{self._quick_failures} times in a row; stopping", file=sys.stderr,
                  flush=True)
            self.failed = True
            self._stop(signal.SIGTERM, None)
            return
        print(f"comfy-serverless: API process {index} (pid {pid}) ended "
              f"(status {status}); starting it again", file=sys.stderr, flush=True)
        self._restart_after_pause(index, ran_for)

    def _restart_after_pause(self, index: int, ran_for: float) -> None:
        if ran_for > _HEALTHY_AFTER:
            self._pause = _FIRST_PAUSE
        time.sleep(self._pause)
        self._pause = min(self._pause * 2, _LONGEST_PAUSE)
        if not self._stopping:
            self._start(index)

    def _stop(self, signum: int, frame: FrameType | None) -> None:
        self._stopping = True
        for pid in list(self._children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)


def _serve_child(settings: Settings, make_app: MakeApp, listener: socket.socket,
                 index: int, parent: int) -> int:
    """One API process: its own app (the first one with the embedded worker), serving from
    the shared socket. Returns its exit status."""
    _die_with(parent)
    try:
        app = make_app(settings, index == 0 and settings.embedded_worker)
        uvicorn.Server(uvicorn_config(app, settings)).run(sockets=[listener])
        return 0
    except BaseException as exc:  # a child reports and exits, never unwinds
        print(f"comfy-serverless: API process {index} failed: {exc!r}", file=sys.stderr,
              flush=True)
        return 1
    finally:
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()


def _die_with(parent: int) -> None:
    """Ask the kernel to end this process when its parent dies (Linux): a supervisor that
    was killed leaves no process serving on its own."""
    if sys.platform != "linux":
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL))
    if os.getppid() != parent:  # it died before prctl took effect
        os._exit(1)


def serve_processes(settings: Settings, make_app: MakeApp) -> int:
    """Serve with `settings.api_processes` processes (see the module's docstring); the exit
    status: 1 when a process kept failing at its start."""
    listener = bound_socket(settings.host, settings.port)
    supervisor = _Supervisor(settings, make_app, listener)
    try:
        supervisor.run()
    finally:
        listener.close()
    return 1 if supervisor.failed else 0
