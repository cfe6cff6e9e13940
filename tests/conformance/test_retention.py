"""Output retention on SQLite and PostgreSQL: the cleaner deletes expired files, once."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from comfy_serverless.auth.keys import issue_key
from comfy_serverless.errors import StorageError
from comfy_serverless.executions.expiry import OutputsExpired, raise_if_expired
from comfy_serverless.executions.submission import new_execution_id
from comfy_serverless.storage.base import StoredLocation
from comfy_serverless.storage.cleaner import RetentionCleaner
from comfy_serverless.storage.local import LocalStorage
from comfy_serverless.storage.signing import UrlSigner
from comfy_serverless.store.options import ExecutionOptions
from comfy_serverless.store.records import NewExecution, OutputRecord, ProgressSnapshot
from comfy_serverless.store.store import Store

DAY = 86_400.0


async def _completed_with(store: Store, storage: LocalStorage, tmp_path: Path,
                          expiries: list[float | None]) -> tuple[str, list[OutputRecord]]:
    issued = issue_key("secret", "basic")
    await store.access.create_api_key(issued.record)
    execution_id = new_execution_id()
    await store.executions.create_execution(NewExecution(
        id=execution_id, api_key_id=issued.record.id, priority=5, workflow={},
        options=ExecutionOptions.from_json({"output_config": {"storage": {"retention_days": 1}}}),
        signature="s",
        webhook_url=None, client_id=None, submitted_at=time.time(), max_attempts=1,
        total_nodes=1))
    claimed = await store.claims.claim_next("w1", 30)
    assert claimed is not None
    outputs = []
    for index, expires_at in enumerate(expiries):
        spooled = tmp_path / f"spool-{index}"
        spooled.write_bytes(b"x" * 10)
        key = f"outputs/{execution_id}/file_{index}.png"
        await storage.put_file(StoredLocation("local", key), spooled, "image/png")
        outputs.append(OutputRecord(
            id=f"out_{execution_id}_{index}", execution_id=execution_id, node_id="9",
            output_type="IMAGE", intermediate=False, filename=f"file_{index}.png",
            content_type="image/png", size_bytes=10, width=None, height=None, format="PNG",
            storage_provider="local", storage_bucket=None, storage_key=key,
            created_at=time.time() - 2 * DAY, expires_at=expires_at))
    assert await store.claims.complete(claimed.lease, outputs, ProgressSnapshot(1, None, None, None,
                                                                                None, 1), 1.0, [])
    return execution_id, outputs


async def test_the_cleaner_deletes_expired_outputs_and_records_it_once(
    store: Store, tmp_path: Path
) -> None:
    storage = LocalStorage(tmp_path / "storage", UrlSigner("s"))
    now = time.time()
    execution_id, outputs = await _completed_with(
        store, storage, tmp_path, [now - 60, now + DAY, None])
    cleaner = RetentionCleaner(store, storage, interval=60)

    assert await store.retention.due(now, 10) == [outputs[0]]
    await cleaner.run_once()

    paths = [storage.path_for(output.storage_key) for output in outputs]
    assert [path.exists() for path in paths] == [False, True, True]
    recorded = {output.id: output for output in await store.executions.outputs(execution_id)}
    assert recorded[outputs[0].id].deleted_at is not None
    assert recorded[outputs[1].id].deleted_at is None
    assert await store.retention.due(time.time(), 10) == []
    assert not await store.retention.mark_deleted(outputs[0].id, time.time())


async def test_results_of_an_expired_execution_answer_410(store: Store, tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "storage", UrlSigner("s"))
    execution_id, _ = await _completed_with(store, storage, tmp_path, [time.time() - 1])
    execution = await store.executions.execution(execution_id)
    assert execution is not None
    raise_if_expired(execution, await store.executions.outputs(execution_id))  # not deleted yet

    await RetentionCleaner(store, storage, interval=60).run_once()
    with pytest.raises(OutputsExpired) as expired:
        raise_if_expired(execution, await store.executions.outputs(execution_id))
    body = expired.value.body()
    assert expired.value.status_code == 410
    assert body["error_code"] == "OUTPUTS_EXPIRED"
    assert body["details"]["retention_days"] == 1
    assert body["details"]["deleted_outputs"] == 1


async def test_a_full_batch_asks_for_another_pass(store: Store, tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "storage", UrlSigner("s"))
    await _completed_with(store, storage, tmp_path, [time.time() - 5] * 3)
    cleaner = RetentionCleaner(store, storage, interval=60, batch_size=2)
    assert await cleaner.run_once() == 2
    assert await cleaner.run_once() == 0
    assert await store.retention.due(time.time(), 10) == []


class _StuckFiles(LocalStorage):
    """Local storage that cannot delete some of its files (permissions, a held lock…)."""

    def __init__(self, root: Path, stuck: set[str]) -> None:
        super().__init__(root, UrlSigner("s"))
        self.stuck = stuck

    async def delete(self, location: StoredLocation) -> None:
        if location.key in self.stuck:
            raise StorageError(f"permission denied: {location.key}")
        await super().delete(location)


async def test_outputs_that_cannot_be_deleted_back_off_and_never_block_the_others(
    store: Store, tmp_path: Path
) -> None:
    now = time.time()
    storage = _StuckFiles(tmp_path / "storage", set())
    _, outputs = await _completed_with(store, storage, tmp_path,
                                       [now - 30, now - 20, now - 10])
    storage.stuck = {outputs[0].storage_key, outputs[1].storage_key}
    cleaner = RetentionCleaner(store, storage, interval=60, batch_size=2)

    assert await cleaner.run_once() == 0, "the two oldest fail"
    await cleaner.run_once()
    assert [o.id for o in await store.retention.due(time.time(), 10)] == []
    recorded = {o.id: o for o in await store.executions.outputs(outputs[0].execution_id)}
    assert recorded[outputs[2].id].deleted_at is not None, "the newest was not held back"
    stuck = recorded[outputs[0].id]
    assert (stuck.deleted_at, stuck.delete_attempts) == (None, 1)
    assert stuck.delete_retry_at is not None
    assert stuck.delete_retry_at >= now + 60

    later = stuck.delete_retry_at + 1
    assert [o.id for o in await store.retention.due(later, 10)] == [outputs[0].id,
                                                                      outputs[1].id]
    storage.stuck.clear()
    assert await store.retention.postpone(outputs[1].id, later + 3600)
    assert [o.id for o in await store.retention.due(later, 10)] == [outputs[0].id]
    stored = await store.executions.outputs(outputs[0].execution_id)
    again = {o.id: o for o in stored}[outputs[1].id]
    assert again.delete_attempts == 2, "each failure counts"
