"""Logs: plain text for a terminal, or one JSON object per line for a log pipeline
(`log_format`). Each record carries the `execution_id` it concerns (a context variable that
the executor and the webhook dispatcher set while they work on one) and the `worker_id` of
the worker whose tasks wrote it.

    {"time": "2026-11-29T02:40:00.123Z", "level": "INFO", "logger": "…worker.worker",
     "message": "execution exec_…: completed", "execution_id": "exec_…",
     "worker_id": "gpu-7"}
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from collections.abc import Iterator
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Literal

__all__ = ["LogFormat", "configure_logging", "execution_context", "worker_context"]

LogFormat = Literal["text", "json"]

_execution_id: ContextVar[str | None] = ContextVar("execution_id", default=None)
_worker_id: ContextVar[str | None] = ContextVar("worker_id", default=None)
_CONTEXT_FIELDS = ("execution_id", "worker_id")


@contextlib.contextmanager
def execution_context(execution_id: str | None) -> Iterator[None]:
    """Records logged inside the block (and by tasks it starts) carry this execution id."""
    token = _execution_id.set(execution_id)
    try:
        yield
    finally:
        _execution_id.reset(token)


def worker_context(worker_id: str) -> None:
    """From now on, in this task and the tasks it starts, records carry this worker id."""
    _worker_id.set(worker_id)


class _ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.execution_id = _execution_id.get()
        record.worker_id = _worker_id.get()
        return True


class _TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        context = " ".join(f"{name}={getattr(record, name)}" for name in _CONTEXT_FIELDS
                           if getattr(record, name, None))
        return f"{text} [{context}]" if context else text


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        moment = datetime.fromtimestamp(record.created, UTC)
        line: dict[str, object] = {
            "time": moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in _CONTEXT_FIELDS:
            if getattr(record, name, None):
                line[name] = getattr(record, name)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


def configure_logging(log_format: LogFormat, level: int = logging.INFO) -> None:
    """One handler on the root logger, on stderr; uvicorn's loggers propagate to it."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_ContextFilter())
    handler.setFormatter(_JsonFormatter() if log_format == "json" else _TextFormatter())
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level)
