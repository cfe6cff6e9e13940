"""Models fetched by source across the fleet: where a cached file came from, what a worker
publishes of it (its sha256 and sources, its affinity tokens), who may see or name it, and
how a preload by source is checked. No test connects anywhere: hosts are IP literals or
refused before any lookup."""

from __future__ import annotations

import asyncio
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from comfy_serverless.access.errors import ModelNotAllowed
from comfy_serverless.access.tiers import Tier
from comfy_serverless.errors import ApiError, RequestInvalid
from comfy_serverless.executions.fetched_models import host_check, refuse_unusable_placed_names
from comfy_serverless.executions.model_requests import with_model_sources
from comfy_serverless.executions.preload_sources import checked_preload_source
from comfy_serverless.executions.submission import new_execution_id
from comfy_serverless.model_sources import affinity_token, parse_source, source_key
from comfy_serverless.model_sources.layout import CacheLayout
from comfy_serverless.model_sources.origins import (
    Origin,
    add_origin,
    origins_for_link,
    origins_of,
    placed_blob,
)
from comfy_serverless.models.inventory import ModelInventory
from comfy_serverless.models.listing import fleet_models, visible_models
from comfy_serverless.settings import Settings
from comfy_serverless.store.models import FileSource, FleetModelFile, ModelFile
from comfy_serverless.store.options import ExecutionOptions
from comfy_serverless.store.records import NewExecution
from comfy_serverless.validation.catalog import NodeCatalog
from comfy_serverless.validation.findings import WorkflowNotRunnable
from comfy_serverless.validation.model_references import model_references
from comfy_serverless.webhooks.system_events import model_changes
from tests.model_files import offline_fetcher
from tests.unit.test_models import _FakeFolders
from workloads.workflows import tiny_sd15

URL = "https://127.0.0.1:8443/models/tiny.safetensors"
SHA = "ab" * 32
LOOPBACK = Settings(webhook_allowed_networks=["127.0.0.1/32"])
SOURCE = FileSource("https://127.0.0.1:8443/models/tiny.safetensors", "127.0.0.1", "k" * 32)


def _tier(*hosts: str) -> Tier:
    return Tier("t", 10, 0, 1, 1, None, 60, ("all_models",), ("all",), model_sources=hosts)


def _file(filename: str, *sources: FileSource) -> FleetModelFile:
    return FleetModelFile("w1", None, False, ModelFile(
        "checkpoints", filename, 10, 1.0, SHA if sources else None, None, sources))


async def test_a_cache_records_each_source_of_a_file_and_finds_its_placed_links(
        tmp_path: Path) -> None:
    layout = CacheLayout(tmp_path / ".cs-cache")
    (layout.root / "sha256" / SHA).write_bytes(b"weights")
    presigned = parse_source(URL + "?signature=secret")
    mirror = parse_source("s3://acme-models/tiny.safetensors")
    renamed = parse_source("https://127.0.0.1:8443/models/other-name.safetensors")
    for source in (presigned, mirror, presigned, renamed):
        await add_origin(layout.root, SHA, source, layout.key(source))
    tiny = (Origin(URL, "127.0.0.1", source_key(presigned), "tiny.safetensors"),  # no query
            Origin("s3://acme-models/tiny.safetensors", "s3://acme-models",
                   source_key(mirror), "tiny.safetensors"))
    assert origins_of(layout.root, SHA) == (
        *tiny, Origin(renamed.display, "127.0.0.1", source_key(renamed),
                      "other-name.safetensors"))
    assert [path.name for path in (layout.root / "origins").iterdir()] == [SHA]  # no temp

    link = layout.place(SHA, "tiny.safetensors", tmp_path / "checkpoints")
    assert origins_for_link(layout.root, SHA, link) == tiny  # not the other file name's
    ordinary = tmp_path / "checkpoints" / "other.safetensors"
    ordinary.write_bytes(b"x")
    elsewhere = tmp_path / "checkpoints" / "elsewhere.safetensors"
    elsewhere.symlink_to(os.path.relpath(ordinary, elsewhere.parent))
    assert placed_blob(link, layout.root) == SHA
    assert placed_blob(ordinary, layout.root) is None
    assert placed_blob(elsewhere, layout.root) is None


async def test_concurrent_origin_writes_keep_every_origin(tmp_path: Path) -> None:
    layout = CacheLayout(tmp_path / ".cs-cache")
    sources = [parse_source(f"https://127.0.0.1/m/{n}/tiny.safetensors") for n in range(12)]
    await asyncio.gather(*(add_origin(layout.root, SHA, source, layout.key(source))
                           for source in sources))
    assert {origin.display for origin in origins_of(layout.root, SHA)} == {
        source.display for source in sources}


def test_a_pinned_source_counts_as_cached_only_once_read_from_itself(tmp_path: Path) -> None:
    layout = CacheLayout(tmp_path / ".cs-cache")
    (layout.root / "sha256" / SHA).write_bytes(b"weights")
    read = parse_source(URL, sha256=SHA)
    (layout.root / "sources" / layout.key(read)).write_text(SHA)
    assert layout.recall(read) == SHA
    assert layout.recall(parse_source(URL)) == SHA  # unpinned: its record names the content
    assert layout.recall(parse_source("https://127.0.0.2/elsewhere.safetensors",
                                      sha256=SHA)) is None  # never read from there
    assert layout.recall(parse_source(URL, sha256="cd" * 32)) is None  # not what it held


def test_an_affinity_token_names_the_content_when_pinned_else_the_source() -> None:
    assert affinity_token(parse_source(URL, sha256=SHA)) == f"sha256:{SHA}"
    unpinned = parse_source(URL + "?signature=secret")
    assert affinity_token(unpinned) == f"source:{source_key(unpinned)}"
    assert "secret" not in affinity_token(unpinned)


async def test_a_job_that_names_a_source_requires_its_token(tmp_path: Path) -> None:
    workflow = tiny_sd15(1)
    workflow["4"]["inputs"]["ckpt_name"] = URL
    execution = NewExecution(
        id=new_execution_id(), api_key_id="k", priority=5, workflow=workflow,
        options=ExecutionOptions(), signature="s", webhook_url=None, client_id=None,
        submitted_at=1.0, max_attempts=1, total_nodes=len(workflow),
        required_models=("vae.safetensors",))
    checked = await with_model_sources(execution, {URL: SHA}, _tier("127.0.0.1"), LOOPBACK)
    assert checked.required_models == (f"sha256:{SHA}", "vae.safetensors")


async def test_a_worker_knows_placed_files_without_hashing_and_publishes_their_tokens(
        tmp_path: Path) -> None:
    models = tmp_path / "checkpoints"
    models.mkdir()
    (models / "plain.safetensors").write_bytes(b"plain")
    (models / f"{SHA[:12]}-tiny.safetensors").write_bytes(b"placed")

    def placed(path: Path) -> tuple[str, tuple[FileSource, ...]] | None:
        return (SHA, (SOURCE,)) if path.name.startswith(SHA[:12]) else None

    inventory = ModelInventory(_FakeFolders(models), placed=placed)  # type: ignore[arg-type]
    files = {file.filename: file for file in await inventory.scan()}
    assert files[f"{SHA[:12]}-tiny.safetensors"].sha256 == SHA
    assert files[f"{SHA[:12]}-tiny.safetensors"].sources == (SOURCE,)
    assert files["plain.safetensors"].sources == ()
    tokens = {f"sha256:{SHA}", f"source:{SOURCE.key}"}
    # Disk affinity names the placed file only (tests/unit/test_disk_affinity.py).
    assert inventory.on_disk() == {f"{SHA[:12]}-tiny.safetensors", *tokens}
    assert inventory.tokens_of([f"{SHA[:12]}-tiny.safetensors"]) == tokens
    assert inventory.tokens_of(["plain.safetensors"]) == frozenset()


def test_a_fetched_file_is_listed_only_to_tiers_that_could_fetch_one_of_its_sources() -> None:
    mirror = FileSource("s3://acme/tiny.safetensors", "s3://acme", "m" * 32)
    models = fleet_models([_file("plain.safetensors"), _file("f-tiny.safetensors", SOURCE),
                           _file("0123456789ab-unrecorded.safetensors"),
                           FleetModelFile("w2", None, False,
                                          ModelFile("checkpoints", "f-tiny.safetensors", 10,
                                                    1.0, SHA, None, (mirror,)))])
    nowhere, loopback, acme = host_check(_tier()), host_check(_tier("127.0.0.*")), host_check(
        _tier("s3://ac*"))
    assert [m.file.filename for m in visible_models(models, nowhere)] == ["plain.safetensors"]
    fetched = visible_models(models, loopback)[0]
    assert fetched.file.filename == "f-tiny.safetensors"
    assert fetched.sources_for(loopback) == [SOURCE]
    assert fetched.sources_for(acme) == [mirror]  # never the other tenant's source
    # A placed-looking name with no record of its sources is listed to no tier.
    assert [m.file.filename for m in visible_models(models, host_check(_tier("*")))] == [
        "f-tiny.safetensors", "plain.safetensors"]


def test_an_unusable_placed_name_is_refused_as_a_file_on_no_worker_wherever_named() -> None:
    placed = "abcdef012345-tiny.safetensors"
    workflow = tiny_sd15(1)
    workflow["4"]["inputs"]["ckpt_name"] = placed
    with pytest.raises(WorkflowNotRunnable) as caught:
        refuse_unusable_placed_names(workflow, {}, frozenset())
    assert caught.value.message == ("The workflow cannot run on this deployment: Model "
                                    f"'{placed}' for 'ckpt_name' is not on any worker")
    refusal = caught.value.details["validation_errors"][0]
    assert refusal["node_id"] == "4"
    assert placed not in refusal["suggestion"]
    # The hint offers the tier's own placed files only (a misspelt name of its own).
    own = "abcdef012345-tinny.safetensors"
    with pytest.raises(WorkflowNotRunnable) as misspelt:
        refuse_unusable_placed_names(workflow, {}, frozenset({own}))
    assert misspelt.value.details["validation_errors"][0]["suggestion"] == f"Nearest: {own}"
    with pytest.raises(WorkflowNotRunnable) as overridden:
        refuse_unusable_placed_names(tiny_sd15(1), {"ckpt_name": placed}, frozenset())
    assert overridden.value.details["validation_errors"][0]["node_id"] is None
    refuse_unusable_placed_names(workflow, {}, frozenset({placed}))  # the tier may use it
    prompt = tiny_sd15(1)
    prompt["6"]["inputs"]["text"] = "abcdef012345-style portrait"  # not a file name
    refuse_unusable_placed_names(prompt, {}, frozenset())


def test_a_narrowed_catalog_neither_accepts_nor_offers_the_hidden_files() -> None:
    info: dict[str, Any] = {"CheckpointLoaderSimple": {
        "input": {"required": {"ckpt_name": [["a.safetensors", "abcdef012345-b.safetensors"]]}},
        "output": ["MODEL", "CLIP", "VAE"], "name": "CheckpointLoaderSimple",
        "python_module": "nodes"}}
    catalog = NodeCatalog.from_object_info(info)
    narrowed = catalog.without_options(frozenset({"abcdef012345-b.safetensors"}))
    spec = narrowed.get("CheckpointLoaderSimple")
    assert spec is not None
    assert spec.inputs["ckpt_name"].options == ("a.safetensors",)
    assert catalog.without_options(frozenset()) is catalog


async def test_a_preload_source_is_checked_as_a_job_source_is() -> None:
    wanted = await checked_preload_source("models[0]", URL + "?signature=secret", SHA,
                                          "checkpoints", _tier("127.0.0.1"), LOOPBACK)
    assert (wanted.display, wanted.sha256, wanted.filename, wanted.model_id) == (
        URL, SHA, f"{SHA[:12]}-tiny.safetensors", f"checkpoint/{SHA[:12]}-tiny")
    assert wanted.allowed_hosts == ("127.0.0.1",)
    unpinned = await checked_preload_source("models[0]", URL, None, "loras",
                                            _tier("127.0.0.1"), LOOPBACK)
    assert (unpinned.filename, unpinned.model_id) == ("tiny.safetensors", "lora/tiny")
    # Only the pin makes the placed name known: the unpinned answer's model_id is provisional.
    assert (wanted.model_id_provisional, unpinned.model_id_provisional) == (False, True)

    refusals: list[tuple[str, str, Tier, type[ApiError], str]] = [
        ("https://models.example.com/a.safetensors", "checkpoints", _tier("127.0.0.1"),
         ModelNotAllowed, "models[0].source"),
        ("https://127.0.0.2/a.safetensors", "checkpoints", _tier("127.0.0.2"),
         ModelNotAllowed, "models[0].source"),  # an address the SSRF rules refuse
        ("ftp://127.0.0.1/a.safetensors", "checkpoints", _tier("127.0.0.1"),
         RequestInvalid, "models[0].source"),
        (URL, "../../etc", _tier("127.0.0.1"), RequestInvalid, "models[0].folder"),
    ]
    for value, folder, tier, kind, field in refusals:
        with pytest.raises(kind) as caught:
            await checked_preload_source("models[0]", value, None, folder, tier, LOOPBACK)
        assert caught.value.details["field"] == field


def test_a_placed_file_of_unknown_source_is_shown_to_no_tier(tmp_path: Path) -> None:
    models = tmp_path / "models"
    fetcher = offline_fetcher(models)
    layout = fetcher.cache.layout
    (layout.root / "sha256" / SHA).write_bytes(b"weights")
    link = layout.place(SHA, "old.safetensors", models / "checkpoints")  # no origin recorded
    placed = fetcher.placed(link)
    assert placed is not None
    assert placed[0] == SHA
    listed = fleet_models([_file(link.name, *placed[1])])
    assert visible_models(listed, host_check(_tier("*"))) == []


def test_two_placements_of_one_file_at_once_both_succeed(tmp_path: Path) -> None:
    """Two workers on one cache placing one new file at the same moment (seen in CI: one
    renamed the other's temporary link from under it): each uses a link of its own."""
    layout = CacheLayout(tmp_path / ".cs-cache")
    layout.blob(SHA).write_bytes(b"weights")
    folder = tmp_path / "checkpoints"
    start = threading.Barrier(8)

    def place() -> Path:
        start.wait()
        return layout.place(SHA, "tiny.safetensors", folder)

    for _ in range(20):
        for link in folder.glob("*"):
            link.unlink()
        with ThreadPoolExecutor(8) as pool:
            links = list(pool.map(lambda _: place(), range(8)))
        assert {link.resolve() for link in links} == {layout.blob(SHA).resolve()}
        assert [path.name for path in folder.iterdir()] == [links[0].name]


@pytest.mark.parametrize("value", [
    {"__value__": "abcdef012345-tiny.safetensors"},  # ComfyUI unwraps it
    "fetched/abcdef012345-tiny.safetensors",  # a folder listed with a subfolder
])
def test_a_wrapped_or_nested_placed_name_is_refused_too(value: object) -> None:
    workflow = tiny_sd15(1)
    workflow["4"]["inputs"]["ckpt_name"] = value
    with pytest.raises(WorkflowNotRunnable):
        refuse_unusable_placed_names(workflow, {}, frozenset())
    with pytest.raises(WorkflowNotRunnable):
        refuse_unusable_placed_names(tiny_sd15(1), {"ckpt_name": value}, frozenset())


def test_a_wrapped_model_name_counts_for_the_tiers_model_groups() -> None:
    workflow = tiny_sd15(1)
    workflow["4"]["inputs"]["ckpt_name"] = {"__value__": "private.safetensors"}
    assert "checkpoints/private.safetensors" in model_references(workflow)


def test_model_updated_events_leave_fetched_files_out() -> None:
    """Sent to every key's endpoints: another tenant's fetched file must not show there."""
    def catalog(*files: str) -> dict[str, Any]:
        return {"CheckpointLoaderSimple": {
            "input": {"required": {"ckpt_name": [list(files)]}},
            "output": ["MODEL"], "output_node": False, "category": "loaders",
            "python_module": "nodes"}}

    changes = model_changes(catalog("a.safetensors"),
                            catalog("a.safetensors", "b.safetensors",
                                    "0123456789ab-secret.safetensors"))
    assert changes == {"added": ["b.safetensors"], "removed": []}
