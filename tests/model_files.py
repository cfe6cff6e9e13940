"""What the model-source tests share: the loopback policy, file bodies and their hashes,
what a cache folder holds, and a worker's fetcher over a cache that nothing downloads into."""

from __future__ import annotations

import hashlib
import json
import shutil
import struct
from pathlib import Path
from typing import cast

from comfy_serverless.model_sources import ModelCache, SourcePolicy, Transport
from comfy_serverless.store.store import Store
from comfy_serverless.webhooks.ssrf import WebhookPolicy
from comfy_serverless.worker.execution_context import ExecutorConfig
from comfy_serverless.worker.model_fetch import ModelFetcher

POLICY = SourcePolicy(WebhookPolicy(allowed_networks=("127.0.0.1/32",)),
                      allowed_hosts=("127.0.0.1",))


def cache_for(root: Path, transport: Transport, max_bytes: int = 1 << 30) -> ModelCache:
    return ModelCache(root, max_bytes=max_bytes, transport=transport)


def file_body(name: str, size: int) -> bytes:
    """`size` bytes that repeat `name`: each test's file is told apart by its content."""
    return (name.encode() * (size // len(name) + 1))[:size]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha_of_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def leftovers(root: Path) -> list[str]:
    """The blobs and partial downloads a cache folder holds."""
    return sorted(path.name for folder in ("sha256", "partial")
                  for path in (root / folder).iterdir())


def offline_fetcher(models: Path) -> ModelFetcher:
    """A worker's fetcher whose cache is `<models>/.cs-cache`, for files a test puts there
    itself (a pinned source found in the cache is never downloaded): no store, no network."""
    cache = ModelCache(models / ".cs-cache", max_bytes=1 << 20, transport=Transport())
    config = ExecutorConfig(worker_id="w", lease_seconds=30, heartbeat_interval=1,
                            cancel_poll_interval=1, progress_write_interval=1)
    return ModelFetcher(lambda: cache, models,
                        lambda hosts: SourcePolicy(allowed_hosts=tuple(hosts)),
                        "https://127.0.0.1", cast(Store, None), config)


def relabelled_safetensors(original: Path, target: Path, label: str) -> Path:
    """A copy of a safetensors file with `label` in its metadata: the same tensors (a loader
    reads it as it reads the original), other bytes, so another sha256 (a file no cache
    holds yet). Streamed, so a large checkpoint is never held in memory."""
    with original.open("rb") as source, target.open("wb") as copy:
        (length,) = struct.unpack("<Q", source.read(8))
        header = json.loads(source.read(length))
        header["__metadata__"] = {**header.get("__metadata__", {}), "copy": label}
        encoded = json.dumps(header).encode()
        encoded += b" " * (-len(encoded) % 8)
        copy.write(struct.pack("<Q", len(encoded)) + encoded)
        shutil.copyfileobj(source, copy, 1 << 20)
    return target


def model_source_service_env(models: Path, tiers_file: Path, ca_bundle: Path,
                             tiers: dict[str, list[str]]) -> dict[str, str]:
    """What a service needs to fetch model sources from a loopback https server in a test
    or a bench: an extra models folder `models` that its ComfyUI reads (its checkpoints/
    made here) with the model cache inside it, the tiers file (tier name: the hosts its
    `model_sources` allow) written to `tiers_file`, loopback allowed as an address, and
    the test CA trusted."""
    (models / "checkpoints").mkdir(parents=True, exist_ok=True)
    (models / "extra_model_paths.yaml").write_text(
        f"fetched:\n    base_path: {models}\n    checkpoints: checkpoints\n")
    tiers_file.parent.mkdir(parents=True, exist_ok=True)
    tiers_file.write_text(json.dumps({"tiers": {
        name: {"model_sources": hosts} for name, hosts in tiers.items()}}))
    return {"COMFY_SERVERLESS_HEARTBEAT_INTERVAL": "1",
            "COMFY_SERVERLESS_TIERS_FILE": str(tiers_file),
            "COMFY_SERVERLESS_WEBHOOK_ALLOWED_NETWORKS": '["127.0.0.1/32"]',
            "COMFY_SERVERLESS_INPUT_CA_BUNDLE": str(ca_bundle),
            "COMFY_SERVERLESS_MODEL_CACHE_DIR": str(models / ".cs-cache"),
            "COMFY_SERVERLESS_COMFYUI_EXTRA_ARGS": json.dumps(
                ["--extra-model-paths-config", str(models / "extra_model_paths.yaml")])}
