"""A fleet that cannot work refuses to start (issue #16, item 5): processes sharing a database
must share their output storage and signing secret. Unit proofs on both store backends."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from comfy_serverless.fleet.identity import FleetMisconfigured, check_fleet_identity
from comfy_serverless.settings import Settings
from comfy_serverless.storage.destinations import DestinationUnavailable, resolve_destination
from comfy_serverless.store.store import Store

SECRET = "fleet-secret-" + "x" * 40


def member(data_dir: Path, name: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {"signing_secret": SECRET, **overrides}
    return Settings(data_dir=data_dir, worker_id=name, **values)


async def test_processes_on_one_shared_folder_and_secret_are_one_fleet(store: Store,
                                                                       tmp_path: Path) -> None:
    for name in ("api-1", "api-2", "worker-1"):
        await check_fleet_identity(store, member(tmp_path / "shared", name))


async def test_a_process_with_its_own_local_folder_is_refused_and_told_how_to_fix_it(
        store: Store, tmp_path: Path) -> None:
    await check_fleet_identity(store, member(tmp_path / "a", "api-1"))
    with pytest.raises(FleetMisconfigured) as refused:
        await check_fleet_identity(store, member(tmp_path / "b", "worker-1"))
    message = str(refused.value)
    assert str(tmp_path / "b" / "storage") in message
    assert "api-1" in message
    assert "signing secret" not in message.split("Fix:")[0]
    for remedy in ("COMFY_SERVERLESS_S3_ENABLED", "COMFY_SERVERLESS_DATA_DIR",
                   "COMFY_SERVERLESS_SIGNING_SECRET", "comfy-serverless fleet forget"):
        assert remedy in message


async def test_a_process_with_another_signing_secret_is_refused(store: Store,
                                                                tmp_path: Path) -> None:
    await check_fleet_identity(store, member(tmp_path, "api-1"))
    with pytest.raises(FleetMisconfigured, match="its signing secret differs"):
        await check_fleet_identity(store, member(tmp_path, "api-2", signing_secret="other" * 10))
    own_secret = Settings(data_dir=tmp_path / "b", worker_id="api-3")  # made in its folder
    with pytest.raises(FleetMisconfigured, match=r"output storage .* and its signing secret"):
        await check_fleet_identity(store, own_secret)


async def test_with_every_output_on_s3_own_folders_are_one_fleet_but_not_another_bucket(
        store: Store, tmp_path: Path) -> None:
    s3 = {"s3_enabled": True, "s3_bucket": "outputs", "s3_endpoint_url": "http://127.0.0.1:9",
          "outputs_on_s3_only": True}
    await check_fleet_identity(store, member(tmp_path / "a", "api-1", **s3))
    await check_fleet_identity(store, member(tmp_path / "b", "worker-1", **s3))
    with pytest.raises(FleetMisconfigured, match=re.escape("s3:http://127.0.0.1:9/other")):
        await check_fleet_identity(store, member(tmp_path / "c", "worker-2",
                                                 **{**s3, "s3_bucket": "other"}))


async def test_s3_merely_enabled_still_needs_one_folder_since_requests_default_to_it(
        store: Store, tmp_path: Path) -> None:
    s3 = {"s3_enabled": True, "s3_bucket": "outputs"}
    await check_fleet_identity(store, member(tmp_path / "a", "api-1", **s3))
    with pytest.raises(FleetMisconfigured, match="its output storage"):
        await check_fleet_identity(store, member(tmp_path / "b", "api-2", **s3))


async def test_outputs_on_s3_only_without_s3_is_refused(store: Store, tmp_path: Path) -> None:
    with pytest.raises(FleetMisconfigured, match="COMFY_SERVERLESS_S3_BUCKET"):
        await check_fleet_identity(store, member(tmp_path, "api-1", outputs_on_s3_only=True))


def test_with_every_output_on_s3_a_request_gets_s3_and_cannot_ask_for_a_local_folder(
        tmp_path: Path) -> None:
    defaults = member(tmp_path, "api-1", s3_enabled=True, s3_bucket="outputs",
                      outputs_on_s3_only=True).storage_defaults()
    destination = resolve_destination({}, "exec_1", defaults)
    assert (destination.provider, destination.bucket) == ("s3", "outputs")
    with pytest.raises(DestinationUnavailable):
        resolve_destination({"provider": "local"}, "exec_1", defaults)
    mixed = member(tmp_path, "api-1", s3_enabled=True, s3_bucket="outputs").storage_defaults()
    assert resolve_destination({}, "exec_1", mixed).provider == "local"


async def test_after_forget_the_next_process_records_a_new_identity(store: Store,
                                                                    tmp_path: Path) -> None:
    await check_fleet_identity(store, member(tmp_path / "a", "api-1"))
    assert await store.fleet.forget_identity()
    await check_fleet_identity(store, member(tmp_path / "b", "api-1"))
    with pytest.raises(FleetMisconfigured):
        await check_fleet_identity(store, member(tmp_path / "a", "api-2"))


async def test_the_check_can_be_turned_off_for_a_process(store: Store, tmp_path: Path) -> None:
    await check_fleet_identity(store, member(tmp_path / "a", "api-1"))
    await check_fleet_identity(store, member(tmp_path / "b", "api-2",
                                             fleet_identity_check=False))
