from pathlib import Path

import pytest

from comfy_serverless.auth.keys import authenticate, issue_key, parse_bearer
from comfy_serverless.errors import AuthenticationFailed
from comfy_serverless.store.store import Store


async def test_keys_are_long_typed_and_stored_only_as_hashes(tmp_path: Path) -> None:
    store = await Store.open(f"sqlite:///{tmp_path / 'k.db'}")
    await store.migrate()
    secret, public = issue_key("secret", "pro"), issue_key("public", "basic")
    assert secret.plaintext.startswith("comfyui_sk_")
    assert public.plaintext.startswith("comfyui_pk_")
    assert len(secret.plaintext) - len("comfyui_sk_") >= 32
    for issued in (secret, public):
        await store.access.create_api_key(issued.record)
        assert issued.plaintext not in repr(issued.record)
        found = await authenticate(store, issued.plaintext)
        assert found.id == issued.record.id
        touched = await store.access.api_key_by_prefix(issued.record.prefix)
        assert touched is not None
        assert touched.last_used_at is not None
    wrong = secret.plaintext[:-1] + ("A" if secret.plaintext[-1] != "A" else "B")
    with pytest.raises(AuthenticationFailed):
        await authenticate(store, wrong)
    with pytest.raises(AuthenticationFailed):
        await authenticate(store, "comfyui_sk_unknown")
    await store.close()


@pytest.mark.parametrize("header", [None, "", "Basic abc", "Bearer ", "token"])
def test_bearer_header_is_required(header: str | None) -> None:
    with pytest.raises(AuthenticationFailed) as refused:
        parse_bearer(header)
    assert refused.value.status_code == 401
    assert refused.value.body()["details"]["key_format"] == "Bearer {api_key}"


def test_bearer_token_is_extracted() -> None:
    assert parse_bearer("Bearer comfyui_sk_abc") == "comfyui_sk_abc"
