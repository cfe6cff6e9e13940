"""The environment this worker's engine runs: the installer's record
(environments/record.py), read when the engine starts and again after each restart, since
ComfyUI loads custom nodes only when it starts (a record written while it runs describes
the next start). A supervised engine snapshots the record as its ComfyUI starts, holding
off installs until it has loaded its nodes; the worker reads that snapshot. Claims take
only jobs asking for no environment or for this one; the catalog publisher publishes it, so
the API can say why a job waits and which node packs passed their scan."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from comfy_serverless.environments.record import (
    InstalledEnvironment,
    read_installed,
    read_record,
)
from comfy_serverless.store.workers import PublishedEnvironment

__all__ = ["EnvironmentWatch"]

log = logging.getLogger(__name__)


class EnvironmentWatch:
    def __init__(self, environment_dir: Path | None, loaded_record: Path | None = None) -> None:
        """`environment_dir` None: the worker runs no environment. `loaded_record`: the
        snapshot a supervised engine took of the record as its ComfyUI started
        (engine/comfyui/environment_hold.py), read instead of the installer's record."""
        self._dir, self._loaded_record = environment_dir, loaded_record
        self.current: InstalledEnvironment | None = None

    def read(self) -> InstalledEnvironment | None:
        """Read the record again (the engine has just started)."""
        if self._dir is None:
            found = None
        elif self._loaded_record is not None:
            found = read_record(self._loaded_record)
        else:
            found = read_installed(self._dir)
        if found != self.current:
            if found is None:
                log.info("no environment installed in %s", self._dir)
            else:
                log.info("environment %s (hash %s) with %d node pack(s)", found.name,
                         found.hash[:12], len(found.nodes))
        self.current = found
        return found

    def claim_fields(self) -> dict[str, Any]:
        """The environment's part of a ClaimMatch."""
        current = self.current
        return {"environment": None if current is None else current.name,
                "environment_hash": None if current is None else current.hash}

    def verified_packs(self) -> tuple[str, ...]:
        """The node packs of the environment the engine runs that its scan found clean."""
        return self.published().verified_packs

    def published(self) -> PublishedEnvironment:
        current = self.current
        if current is None:
            return PublishedEnvironment()
        return PublishedEnvironment(
            name=current.name, hash=current.hash.lower(),
            verified_packs=tuple(node.name for node in current.nodes if node.verified),
            flagged_packs=tuple(node.name for node in current.nodes if not node.verified))
