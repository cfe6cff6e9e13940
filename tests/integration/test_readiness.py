"""/readyz: the store answers and, with an embedded worker, its ComfyUI is connected."""

from __future__ import annotations

import contextlib
from pathlib import Path

import httpx

from comfy_serverless.api.app import create_app
from comfy_serverless.errors import StoreUnavailable
from comfy_serverless.settings import Settings
from comfy_serverless.testing import free_port
from tests.fakes.comfyui import running_fake
from tests.helpers import wait_for


async def test_readiness_follows_the_workers_comfyui(tmp_path: Path) -> None:
    port = free_port()
    (tmp_path / "engine").mkdir()
    engine = contextlib.AsyncExitStack()
    await engine.enter_async_context(running_fake(tmp_path / "engine", port))
    settings = Settings(data_dir=tmp_path / "data", comfyui_url=f"http://127.0.0.1:{port}",
                        webhook_dispatcher=False, database_url=None)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            ready = await client.get("/readyz")
            assert ready.status_code == 200
            assert ready.json()["engine"] == "ready"
            await engine.aclose()  # ComfyUI goes away

            async def unavailable() -> bool:
                response = await client.get("/readyz")
                return response.status_code == 503 and response.json()["engine"] == "down"

            await wait_for(unavailable, timeout=10, what="readiness to drop")
            assert (await client.get("/healthz")).status_code == 200


async def test_an_unready_store_is_reported_without_its_drivers_words(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", webhook_dispatcher=False,
                        database_url=None, embedded_worker=False)
    app = create_app(settings)
    secret = "connection to /srv/db/.s.PGSQL.5432 failed: password for 'ops' is hunter2"

    async def refuse(_: float) -> int:
        raise StoreUnavailable(secret)

    async with app.router.lifespan_context(app):
        app.state.services.store.metrics.live_worker_count = refuse  # fault injection
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "store": "unavailable"}
    assert "hunter2" not in response.text
