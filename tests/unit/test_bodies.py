"""Result bodies of outputs: their download URLs, signed through the storage seam."""

from __future__ import annotations

import time
from pathlib import Path

from comfy_serverless.executions.bodies import output_body
from comfy_serverless.storage.local import LocalStorage
from comfy_serverless.storage.signing import UrlSigner
from comfy_serverless.store.records import OutputRecord


async def test_an_output_body_carries_an_absolute_signed_url(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "storage", UrlSigner("s"))
    output = OutputRecord(
        id="out_1", execution_id="exec_1", node_id="9", output_type="IMAGE",
        intermediate=False, filename="a.png", content_type="image/png", size_bytes=1,
        width=2, height=3, format="PNG", storage_provider="local", storage_bucket=None,
        storage_key="outputs/exec_1/a.png", created_at=time.time())
    expires = int(time.time()) + 60
    body = await output_body(output, storage, base_url="https://api.example.com/",
                             expires=expires, inline=False)
    assert body["storage"]["url"].startswith(
        "https://api.example.com/files/outputs/exec_1/a.png?")
    assert body["file_info"]["dimensions"] == "2x3"
