"""This process's resident memory, from /proc/self: what a bench reports as peak growth."""

from __future__ import annotations

from pathlib import Path

__all__ = ["reset_peak", "status_kb"]


def status_kb(field: str) -> int:
    """One kB figure of /proc/self/status (VmRSS, VmHWM ...)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise LookupError(field)


def reset_peak() -> int:
    """Reset the peak RSS to the current RSS; returns the current RSS in kB."""
    Path("/proc/self/clear_refs").write_text("5")
    return status_kb("VmRSS")
