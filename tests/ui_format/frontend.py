"""The real ComfyUI frontend in headless Chromium: the oracle for UI-format conversion.

`Frontend` opens the editor that a real ComfyUI serves (with `--front-end-root` pointing at
the `comfyui-frontend-package` pinned by ComfyUI 0.3.75), loads a UI-format file with
`app.loadGraphData` and answers its API export, `app.graphToPrompt()`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from playwright.sync_api import Page, sync_playwright

__all__ = ["CHROMIUM", "CHROMIUM_FLAGS", "Frontend", "open_frontend"]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]
# Ready once the backend's node classes and the editor's own (Reroute, PrimitiveNode) are
# registered, not merely once the app object exists.
_READY = """() => Boolean(window.app && window.app.graph && window.LiteGraph
  && ['KSampler', 'Reroute', 'PrimitiveNode', 'Note'].every(
       (type) => type in window.LiteGraph.registered_node_types))"""
_EXPORT = """async (file) => {
  await window.app.loadGraphData(file, true, false, null,
    {showMissingNodesDialog: false, showMissingModelsDialog: false});
  return (await window.app.graphToPrompt()).output;
}"""


class Frontend:
    def __init__(self, page: Page) -> None:
        self.page = page

    def export(self, ui_file: dict[str, Any]) -> dict[str, Any]:
        """The editor's API export of `ui_file`."""
        result: dict[str, Any] = self.page.evaluate(_EXPORT, ui_file)
        return result

    def run(self, script: str, argument: Any = None) -> Any:
        return self.page.evaluate(script, argument)


@contextmanager
def open_frontend(base_url: str) -> Iterator[Frontend]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page()
            page.goto(base_url)
            page.wait_for_function(_READY, timeout=120_000)
            yield Frontend(page)
        finally:
            browser.close()
