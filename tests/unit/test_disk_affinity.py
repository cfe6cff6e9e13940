"""What a worker's claim names for its disk affinity: only the files placed from its model
cache (by placed name, sha256 and sources), at most DISK_AFFINITY_FILES of them, the most
recently used; never the files an operator put in its folders. A worker with nothing warm
and nothing from its cache therefore claims with the strict-order query."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from comfy_serverless.models.inventory import DISK_AFFINITY_FILES, ModelInventory, PlacedLookup
from comfy_serverless.store.models import FileSource
from comfy_serverless.worker.environment_watch import EnvironmentWatch
from comfy_serverless.worker.worker_config import WorkerConfig
from tests.unit.test_models import _FakeFolders


def _sha(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


def _placed_lookup(prefix: str) -> PlacedLookup:
    """Files whose names start with `prefix` are placed from the cache, each of its own
    source."""
    def placed(path: Path) -> tuple[str, tuple[FileSource, ...]] | None:
        if not path.name.startswith(prefix):
            return None
        return _sha(path.name), (FileSource(f"https://127.0.0.1/{path.name}", "127.0.0.1",
                                            _sha(path.name)[:32]),)
    return placed


async def test_only_the_most_recently_used_placed_files_are_named(tmp_path: Path) -> None:
    models = tmp_path / "checkpoints"
    models.mkdir()
    for index in range(20):
        (models / f"operator-{index}.safetensors").write_bytes(b"o")
    placed = [f"placed-{index:03d}.safetensors" for index in range(DISK_AFFINITY_FILES + 40)]
    for index, name in enumerate(placed):  # a later index: used more recently
        (models / name).write_bytes(b"p")
        os.utime(models / name, (1_000_000 + index, 1_000_000 + index))
    inventory = ModelInventory(_FakeFolders(models),  # type: ignore[arg-type]
                               placed=_placed_lookup("placed-"))
    await inventory.scan()
    recent = placed[-DISK_AFFINITY_FILES:]
    expected = {*recent, *(f"sha256:{_sha(name)}" for name in recent),
                *(f"source:{_sha(name)[:32]}" for name in recent)}
    assert inventory.on_disk() == expected
    assert not any(name.startswith("operator-") for name in inventory.on_disk())


async def test_a_worker_with_only_operator_files_claims_in_strict_order(
        tmp_path: Path) -> None:
    models = tmp_path / "checkpoints"
    models.mkdir()
    (models / "sd15.safetensors").write_bytes(b"weights")
    inventory = ModelInventory(_FakeFolders(models),  # type: ignore[arg-type]
                               placed=_placed_lookup("placed-"))
    await inventory.scan()
    assert inventory.on_disk() == frozenset()
    config = WorkerConfig(worker_id="w1", spool_dir=tmp_path / "spool")
    match = config.claim_match("cpu", frozenset(), inventory.on_disk(), EnvironmentWatch(None))
    assert not match.holds_models  # claim_next_in_order, the fast strict pick
    warm = config.claim_match("cpu", frozenset({"sd15.safetensors"}), inventory.on_disk(),
                              EnvironmentWatch(None))
    assert warm.holds_models
