"""Our conversion against the real editor's own export (`app.graphToPrompt()`), on every
file of tests/fixtures/ui_workflows/, node by node and input by input."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from comfy_serverless.engine.comfyui.installer import EngineLayout
from comfy_serverless.errors import ApiError
from comfy_serverless.validation.catalog import NodeCatalog
from comfy_serverless.validation.ui_format import Conversion, convert_ui_workflow, is_ui_format
from tests.ui_format.conftest import template_workflows
from tests.ui_format.frontend import Frontend

CORPUS = Path(__file__).resolve().parents[1] / "fixtures" / "ui_workflows"
FILES = sorted(CORPUS.glob("*.json"))
_EDITOR_ONLY = {"Reroute", "PrimitiveNode", "Note", "MarkdownNote"}

MAX_NODES = 1000


def convert(ui_file: dict[str, Any], catalog: NodeCatalog) -> Conversion:
    return convert_ui_workflow(ui_file, catalog, max_nodes=MAX_NODES)


@pytest.fixture(scope="module")
def catalog(frontend_comfyui: str) -> NodeCatalog:
    """As the workers publish it: stored with sorted keys (only `input_order` keeps order)."""
    with urllib.request.urlopen(f"{frontend_comfyui}/object_info", timeout=30) as response:
        published = json.dumps(json.load(response), sort_keys=True)
    return NodeCatalog.from_object_info(json.loads(published))


def _unknown_classes(ui_file: dict[str, Any], catalog: NodeCatalog) -> set[str]:
    subgraphs = (ui_file.get("definitions") or {}).get("subgraphs") or []
    graphs = [ui_file, *subgraphs]
    groups = (ui_file.get("extra") or {}).get("groupNodes") or {}
    names = {str(s["id"]) for s in subgraphs} | {f"workflow>{name}" for name in groups}
    return {node["type"] for graph in graphs for node in graph["nodes"]
            if node.get("mode", 0) not in (2, 4) and node["type"] not in _EDITOR_ONLY
            and node["type"] not in names and catalog.get(node["type"]) is None}


def test_the_corpus_covers_every_construct() -> None:
    assert len(FILES) >= 130
    text = "\n".join(path.read_text() for path in FILES)
    for construct in ('"Reroute"', '"PrimitiveNode"', '"mode": 2', '"mode": 4', '"Note"',
                      '"MarkdownNote"', '"subgraphs"', '"randomize"', '"LoadImage"',
                      '"PrimitiveInt"', '"ImageCompositeMasked"', '"groupNodes"'):
        assert construct in text, f"no corpus file has {construct}"


def _difference(ui_file: dict[str, Any], frontend: Frontend, catalog: NodeCatalog
                ) -> str | None:
    """How our conversion differs from the editor's export, node by node and input by input;
    None when they are equal. A file with classes that no worker has must be refused with a
    400 that names them."""
    unknown = _unknown_classes(ui_file, catalog)
    if unknown:
        try:
            convert(ui_file, catalog)
        except ApiError as refused:
            named = set(refused.details.get("missing_nodes", ()))
            return None if refused.status_code == 400 and named == unknown else str(refused)
        return f"converted, although {sorted(unknown)} exist nowhere"
    expected = frontend.export(ui_file)
    ours = convert(ui_file, catalog).graph
    if sorted(ours) != sorted(expected):
        return f"nodes: ours {sorted(ours)}, the editor's {sorted(expected)}"
    for node_id, node in expected.items():
        for field in ("class_type", "_meta"):
            if ours[node_id][field] != node[field]:
                return (f"{node_id}.{field}: ours {ours[node_id][field]!r}, "
                        f"the editor's {node[field]!r}")
        mine = ours[node_id]["inputs"]
        for name in sorted(set(mine) | set(node["inputs"])):
            if mine.get(name) != node["inputs"].get(name):
                return (f"{node_id}.{name}: ours {mine.get(name)!r}, "
                        f"the editor's {node['inputs'].get(name)!r}")
    return None


@pytest.mark.parametrize("path", FILES, ids=[path.stem for path in FILES])
def test_conversion_equals_the_editors_export(path: Path, frontend: Frontend,
                                              catalog: NodeCatalog) -> None:
    assert _difference(json.loads(path.read_text()), frontend, catalog) is None


def test_comfyuis_own_templates_convert_as_the_editor_exports_them(
        engine_layout: EngineLayout, frontend: Frontend, catalog: NodeCatalog) -> None:
    checked = 0
    differences = []
    for path in template_workflows(engine_layout):
        ui_file = json.loads(path.read_text())
        if not is_ui_format(ui_file):
            continue  # the packages' index files
        checked += 1
        if (difference := _difference(ui_file, frontend, catalog)) is not None:
            differences.append(f"{path.name}: {difference}")
    assert checked >= 70
    assert differences == []
