"""/docs and /redoc work without the internet: their pages name local URLs only, and the
app serves every asset they name."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from comfy_serverless.api.app import create_app
from comfy_serverless.settings import Settings

# src= and href= of tags, Swagger UI's `url: '…'` and ReDoc's spec-url= (the document).
_ASSET = re.compile(r"""(?:src|href|spec-url)\s*=\s*["']([^"']+)["']|url\s*:\s*['"]([^'"]+)['"]""")


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(Settings(data_dir=tmp_path), with_worker=False)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


def _referenced(html: str) -> list[str]:
    return [first or second for first, second in _ASSET.findall(html)]


@pytest.mark.parametrize(("page", "assets"), [
    ("/docs", {"swagger-ui-bundle.js", "swagger-ui.css", "favicon.png"}),
    ("/redoc", {"redoc.standalone.js", "favicon.png"}),
])
async def test_a_docs_page_loads_only_local_assets(
        client: httpx.AsyncClient, page: str, assets: set[str]) -> None:
    response = await client.get(page)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    # ReDoc's Redocly logo comes from a CDN whatever its options: the browser must not ask.
    assert response.headers["content-security-policy"] == "img-src 'self' data:"
    assert not re.search(r"""(?:src|href)\s*=\s*["']https?://""", response.text)
    assert "cdn" not in response.text.lower()
    referenced = _referenced(response.text)
    assert {url.rsplit("/", 1)[-1] for url in referenced} >= assets | {"openapi.json"}
    for url in referenced:
        assert url.startswith("/"), url
        answer = await client.get(url)
        assert answer.status_code == 200, url
        assert answer.content, url


async def test_the_swagger_oauth2_redirect_page_is_served(client: httpx.AsyncClient) -> None:
    response = await client.get("/docs/oauth2-redirect")
    assert response.status_code == 200
    assert "https://" not in response.text
