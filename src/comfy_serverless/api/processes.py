"""Several API processes on one port (`api_processes`): one Python process is one core's
worth of request handling, so a machine with more cores serves more requests with more
processes, all accepting from one listening socket.

The parent binds the socket, forks the processes and supervises them: it restarts one that
dies (after a pause that grows while they keep dying) and, on SIGTERM or SIGINT, passes the
signal on and waits for them all. Only the first process runs the embedded worker (one
ComfyUI per machine); every process runs the background loops, which are safe to run in
several replicas at once. Per-minute rate limits must be shared, so more than one process
needs Redis (`redis_url`).
"""

from __future__ import annotations

import contextlib
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
        self._stopping = False

    def run(self) -> None:
        for index in range(self._settings.api_processes):
            self._start(index)
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        while self._children:
            self._reap_one()

    def _start(self, index: int) -> None:
        pid = os.fork()
        if pid == 0:  # the child: serve until told to stop, never return into the parent's code
            os._exit(_serve_child(self._settings, self._make_app, self._listener, index))
        self._children[pid] = index
        self._started_at[index] = time.monotonic()

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
        print(f"comfy-serverless: API process {index} (pid {pid}) ended "
              f"(status {status}); starting it again", file=sys.stderr, flush=True)
        self._restart_after_pause(index)

    def _restart_after_pause(self, index: int) -> None:
        if time.monotonic() - self._started_at[index] > _HEALTHY_AFTER:
            self._pause = _FIRST_PAUSE
        time.sleep(self._pause)
        self._pause = min(self._pause * 2, _LONGEST_PAUSE)
        if not self._stopping:
            self._start(index)

    def _stop(self, signum: int, frame: FrameType | None) -> None:
        self._stopping = True
        for pid in list(self._children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)


def _serve_child(settings: Settings, make_app: MakeApp, listener: socket.socket,
                 index: int) -> int:
    """One API process: its own app (the first one with the embedded worker), serving from
    the shared socket. Returns its exit status."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
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


def serve_processes(settings: Settings, make_app: MakeApp) -> None:
    """Serve with `settings.api_processes` processes (see the module's docstring)."""
    listener = bound_socket(settings.host, settings.port)
    try:
        _Supervisor(settings, make_app, listener).run()
    finally:
        listener.close()
