"""/docs and /redoc in headless Chromium with the network cut: every request that does not
go to the service itself is aborted, and both pages still show every operation.
Needs Debian's chromium (scripts/ensure-browser), as the UI-format oracle does."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
import uvicorn
from playwright.sync_api import Page, Route, sync_playwright

from comfy_serverless.api.app import create_app
from comfy_serverless.settings import Settings
from comfy_serverless.testing import free_port
from tests.ui_format.frontend import CHROMIUM, CHROMIUM_FLAGS

_HTTP_METHODS = {"get", "post", "put", "patch", "delete"}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    """The app on a loopback port (no lifespan: the pages need no store), and how many
    operations its document has."""
    app = create_app(Settings(data_dir=tmp_path_factory.mktemp("docs")), with_worker=False)
    operations = sum(method in _HTTP_METHODS for item in app.openapi()["paths"].values()
                     for method in item)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off",
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started
    try:
        yield f"http://127.0.0.1:{port}", operations
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def _open_offline(page: Page, url: str, leaving: list[str]) -> None:
    def only_loopback(route: Route) -> None:
        if urlsplit(route.request.url).hostname == "127.0.0.1":
            route.continue_()
        else:
            leaving.append(route.request.url)
            route.abort()

    page.route("**/*", only_loopback)
    page.goto(url)


@pytest.mark.parametrize(("page_path", "operation_selector"), [
    ("/docs", ".opblock"),
    ("/redoc", "[data-section-id^='operation/']"),
])
def test_the_docs_pages_show_every_operation_offline(
        served: tuple[str, int], page_path: str, operation_selector: str) -> None:
    base_url, operations = served
    leaving: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page()
            _open_offline(page, base_url + page_path, leaving)
            page.wait_for_function(
                f"(n) => document.querySelectorAll(\"{operation_selector}\").length >= n",
                arg=operations, timeout=60_000)
            shown = page.locator(operation_selector).count()
        finally:
            browser.close()
    assert shown == operations
    assert leaving == []
