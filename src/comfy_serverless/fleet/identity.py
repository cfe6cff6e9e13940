"""A fleet that cannot work refuses to start.

API replicas and workers that share a database are one fleet: a worker stores an output, and
any API replica must serve it and sign its URL. So every process must see the same output
storage and the same signing secret. At start (`open_services`), each process computes

- its **storage identity**: `local:<id>`, the id kept in a marker file in its storage folder
  (made once; a shared folder has one marker), since a request that names no provider is
  stored there; plus `s3:<endpoint>/<bucket>` when S3 is enabled. With `outputs_on_s3_only`
  every output goes to S3 and local folders may differ: the identity is the S3 part alone;
- its **secret fingerprint**: an HMAC of a fixed label under the signing secret (it reveals
  nothing about the secret);

records both in the database when it is the first, and otherwise compares them with the
record. A process that differs raises FleetMisconfigured, which says how to fix it.
`comfy-serverless fleet forget` drops the record after a deliberate change.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
import os
import secrets
import time
from pathlib import Path

from comfy_serverless.errors import ComfyServerlessError
from comfy_serverless.settings import Settings
from comfy_serverless.store.fleet import FleetRecord
from comfy_serverless.store.store import Store

__all__ = ["FleetMisconfigured", "check_fleet_identity"]

log = logging.getLogger(__name__)

_MARKER = ".fleet-storage-id"
_FINGERPRINT_LABEL = b"comfy-serverless fleet identity v1"


class FleetMisconfigured(ComfyServerlessError):
    """This process's output storage or signing secret is not the fleet's."""


def storage_marker(folder: Path) -> str:
    """The id of a storage folder: made once (linked into place, so that processes starting
    together on one shared folder all read the same id), then read."""
    marker = folder / _MARKER
    if not marker.exists():
        folder.mkdir(parents=True, exist_ok=True)
        partial = folder / f"{_MARKER}.{os.getpid()}.partial"
        partial.write_text(secrets.token_hex(16))
        with contextlib.suppress(FileExistsError):
            os.link(partial, marker)
        partial.unlink()
    return marker.read_text().strip()


def secret_fingerprint(secret: str) -> str:
    return hmac.new(secret.encode(), _FINGERPRINT_LABEL, hashlib.sha256).hexdigest()[:32]


def storage_identity(settings: Settings) -> str:
    s3 = f"s3:{settings.s3_endpoint_url or 'aws'}/{settings.s3_bucket}"
    if settings.outputs_on_s3_only:
        if not (settings.s3_enabled and settings.s3_bucket):
            raise FleetMisconfigured(
                "outputs_on_s3_only needs S3: set COMFY_SERVERLESS_S3_ENABLED=true and "
                "COMFY_SERVERLESS_S3_BUCKET")
        return s3
    local = f"local:{storage_marker(settings.storage_dir())}"
    return f"{local} {s3}" if settings.s3_enabled else local


def local_fleet_record(settings: Settings, now: float) -> FleetRecord:
    return FleetRecord(storage_identity(settings),
                       secret_fingerprint(settings.resolved_signing_secret()),
                       settings.worker_id, now)


def _mismatch(mine: FleetRecord, fleet: FleetRecord, settings: Settings) -> str | None:
    problems = []
    if mine.storage != fleet.storage:
        where = (f"local folder {settings.storage_dir()}, {mine.storage}"
                 if mine.storage.startswith("local:") else mine.storage)
        problems.append(f"its output storage ({where}) is not the fleet's ({fleet.storage})")
    if mine.secret_fingerprint != fleet.secret_fingerprint:
        problems.append("its signing secret differs from the fleet's")
    if not problems:
        return None
    return (f"This process refuses to start: {' and '.join(problems)}, as first recorded by "
            f"{fleet.recorded_by}. Outputs stored by one process must be served and signed by "
            "every other. Fix: give every API replica and worker the same output storage "
            "(one bucket with COMFY_SERVERLESS_S3_ENABLED=true and "
            "COMFY_SERVERLESS_OUTPUTS_ON_S3_ONLY=true, or one shared COMFY_SERVERLESS_DATA_DIR) "
            "and the same COMFY_SERVERLESS_SIGNING_SECRET. After "
            "a deliberate change, stop the fleet and run `comfy-serverless fleet forget`.")


async def check_fleet_identity(store: Store, settings: Settings) -> None:
    """Record this fleet's identity, or refuse to run with another one."""
    if not settings.fleet_identity_check:
        return
    mine = local_fleet_record(settings, time.time())
    fleet = await store.fleet.record_identity(mine)
    problem = _mismatch(mine, fleet, settings)
    if problem is not None:
        log.error("%s", problem)
        raise FleetMisconfigured(problem)
