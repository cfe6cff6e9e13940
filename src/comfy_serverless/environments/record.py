"""The record of an installed environment: written by the installer once everything in the
manifest is in place, read by the worker, which publishes its name and hash with its
catalog so that only workers with the environment claim jobs that ask for it.

It lives at `<environment_dir>/environment.json`; its custom nodes in
`<environment_dir>/custom_nodes/`, a folder the engine's supervisor adds to ComfyUI's
custom node paths.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["InstalledEnvironment", "InstalledNode", "read_installed", "read_record",
           "record_path", "write_installed"]

_RECORD = "environment.json"


@dataclass(frozen=True)
class InstalledNode:
    """One custom node pack: its folder name under custom_nodes/, where it came from (a git
    URL or a local path), the commit it is at (None for a plain folder), and what the
    static scan found in it (empty: nothing flagged)."""

    name: str
    source: str
    commit: str | None = None
    findings: tuple[str, ...] = ()

    @property
    def verified(self) -> bool:
        return not self.findings


@dataclass(frozen=True)
class InstalledEnvironment:
    """`hash` is the sha256 (hex) of the manifest's canonical form: two workers with the
    same hash run the same environment."""

    name: str
    hash: str
    nodes: tuple[InstalledNode, ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> InstalledEnvironment:
        nodes = tuple(InstalledNode(name=node["name"], source=node["source"],
                                    commit=node.get("commit"),
                                    findings=tuple(node.get("findings") or ()))
                      for node in data.get("nodes") or ())
        return cls(name=str(data["name"]), hash=str(data["hash"]), nodes=nodes)


def record_path(environment_dir: Path) -> Path:
    return environment_dir / _RECORD


def read_installed(environment_dir: Path) -> InstalledEnvironment | None:
    """The environment installed there, or None when none is (or its record is unreadable:
    a worker then runs as one without an environment)."""
    return read_record(record_path(environment_dir))


def read_record(path: Path) -> InstalledEnvironment | None:
    """A record file (the installer's, or the snapshot of what ComfyUI loaded), or None."""
    try:
        data = json.loads(path.read_text())
        return InstalledEnvironment.from_json(data)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write_installed(environment_dir: Path, environment: InstalledEnvironment) -> None:
    """Written to a temporary file and renamed, so a reader never sees half a record."""
    environment_dir.mkdir(parents=True, exist_ok=True)
    partial = environment_dir / f"{_RECORD}.{os.getpid()}.partial"
    partial.write_text(json.dumps(environment.to_json(), indent=2))
    os.replace(partial, record_path(environment_dir))
