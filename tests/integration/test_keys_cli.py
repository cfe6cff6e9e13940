"""`comfy-serverless keys …` as an operator runs it, on the embedded SQLite store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from comfy_serverless.auth.keys import authenticate
from comfy_serverless.errors import AuthenticationFailed
from comfy_serverless.settings import Settings
from comfy_serverless.store.store import Store


def _cli(data_dir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COMFY_SERVERLESS_DATA_DIR": str(data_dir)}
    env.pop("DATABASE_URL", None)
    env.pop("COMFY_SERVERLESS_DATABASE_URL", None)
    return subprocess.run([sys.executable, "-m", "comfy_serverless.cli", "keys", *args],
                          env=env, capture_output=True, text=True, check=check)


def _json(data_dir: Path, *args: str) -> Any:
    return json.loads(_cli(data_dir, *args).stdout)


async def _works(data_dir: Path, plaintext: str) -> bool:
    store = await Store.open(Settings(data_dir=data_dir).resolved_database_url())
    try:
        await authenticate(store, plaintext)
        return True
    except AuthenticationFailed:
        return False
    finally:
        await store.close()


async def test_keys_are_created_listed_limited_rotated_and_revoked(tmp_path: Path) -> None:
    public = _cli(tmp_path, "create", "--public", "--tier", "pro", "--name", "web").stdout.strip()
    assert public.startswith("comfyui_pk_")
    secret = _cli(tmp_path, "create", "--limit", "requests_per_minute=30").stdout.strip()
    [web, backend] = _json(tmp_path, "list")
    assert (web["type"], web["tier"], web["name"]) == ("public", "pro", "web")
    assert backend["limits"]["requests_per_minute"] == 30
    assert public not in json.dumps([web, backend]), "a listing never shows a secret"

    limited = _json(tmp_path, "limits", backend["key_id"], "monthly_quota=5",
                    "requests_per_minute=none")
    assert limited["custom_limits"] == {"monthly_quota": 5}
    assert limited["limits"]["requests_per_minute"] == 10

    rotated = _cli(tmp_path, "rotate", backend["key_id"]).stdout.strip()
    assert rotated.startswith("comfyui_sk_")
    assert rotated != secret
    assert not await _works(tmp_path, secret)
    assert await _works(tmp_path, rotated)
    assert _json(tmp_path, "show", backend["key_id"])["rotated_at"] is not None

    assert _json(tmp_path, "revoke", backend["key_id"])["revoked_at"] is not None
    assert not await _works(tmp_path, rotated)

    refused = _cli(tmp_path, "create", "--tier", "platinum", check=False)
    assert refused.returncode == 2
    assert "Unknown tier" in refused.stderr
    missing = _cli(tmp_path, "show", "key_nope", check=False)
    assert missing.returncode == 2
    assert "No API key" in missing.stderr
