"""UI-format conversion on hand-made files, one construct each (the real editor's export is
the oracle in tests/ui_format/)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from comfy_serverless.cli import main
from comfy_serverless.errors import ApiError
from comfy_serverless.validation.catalog import NodeCatalog
from comfy_serverless.validation.prepare import prepare_workflow
from comfy_serverless.validation.rules import ValidationRules
from comfy_serverless.validation.ui_format import Conversion, convert_ui_workflow, is_ui_format

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "object_info.json"

MAX_NODES = 100


def convert(ui_file: dict[str, Any], catalog: NodeCatalog) -> Conversion:
    return convert_ui_workflow(ui_file, catalog, max_nodes=MAX_NODES)


@pytest.fixture(scope="module")
def catalog() -> NodeCatalog:
    """As the workers publish it: stored with sorted keys, so only `input_order` keeps the
    order of the inputs."""
    published = json.dumps(json.loads(FIXTURE.read_text()), sort_keys=True)
    return NodeCatalog.from_object_info(json.loads(published))


def node(node_id: int, kind: str, values: list[Any] | None = None, *, mode: int = 0,
         inputs: Sequence[tuple[str, str, int | None]] = (),
         outputs: Sequence[tuple[str, list[int]]] = (), title: str | None = None) -> dict[str, Any]:
    found: dict[str, Any] = {
        "id": node_id, "type": kind, "mode": mode,
        "inputs": [{"name": n, "type": t, "link": link} for n, t, link in inputs],
        "outputs": [{"name": t, "type": t, "links": links} for t, links in outputs]}
    if values is not None:
        found["widgets_values"] = values
    if title:
        found["title"] = title
    return found


def ui(*nodes: dict[str, Any], links: list[list[Any]], **extra: Any) -> dict[str, Any]:
    return {"nodes": list(nodes), "links": links, "version": 0.4, **extra}


def image_chain(middle_mode: int = 0) -> dict[str, Any]:
    return ui(
        node(1, "EmptyImage", [64, 32, 1, 255], outputs=[("IMAGE", [1])]),
        node(2, "ImageInvert", mode=middle_mode, inputs=[("image", "IMAGE", 1)],
             outputs=[("IMAGE", [2])]),
        node(3, "SaveImage", ["out"], inputs=[("images", "IMAGE", 2)]),
        links=[[1, 1, 0, 2, 0, "IMAGE"], [2, 2, 0, 3, 0, "IMAGE"]])


def test_detects_only_the_ui_format() -> None:
    assert is_ui_format(image_chain())
    assert not is_ui_format({"1": {"class_type": "SaveImage", "inputs": {}}})
    assert not is_ui_format({"nodes": {}, "metadata": {}})


def test_widgets_map_in_catalog_order_with_links(catalog: NodeCatalog) -> None:
    graph = convert(image_chain(), catalog).graph
    assert graph["1"]["inputs"] == {"width": 64, "height": 32, "batch_size": 1, "color": 255}
    assert graph["2"]["inputs"] == {"image": ["1", 0]}
    assert graph["3"]["inputs"] == {"filename_prefix": "out", "images": ["2", 0]}


def test_control_after_generate_and_upload_widgets_are_skipped(catalog: NodeCatalog) -> None:
    sampler = node(5, "KSampler", [42, "randomize", 3, 7.5, "euler", "karras", 0.5])
    loader = node(6, "LoadImage", ["cat.png", "image"])
    graph = convert(ui(sampler, loader, links=[]), catalog).graph
    assert graph["5"]["inputs"] == {"seed": 42, "steps": 3, "cfg": 7.5, "sampler_name": "euler",
                                    "scheduler": "karras", "denoise": 0.5}
    assert graph["6"]["inputs"] == {"image": "cat.png"}


def test_missing_options_take_defaults_with_a_warning(catalog: NodeCatalog) -> None:
    old = ui(node(1, "EmptyImage", [64, 32], title="Old"), links=[])
    conversion = convert(old, catalog)
    assert conversion.graph["1"]["inputs"] == {"width": 64, "height": 32, "batch_size": 1,
                                               "color": 0}
    assert any("UI node 1 'Old'" in w and "batch_size, color" in w
               for w in conversion.warnings)


def test_converted_widget_takes_its_link(catalog: NodeCatalog) -> None:
    file = ui(node(1, "PrimitiveInt", [9], outputs=[("INT", [1])]),
              node(2, "EmptyImage", [64, 32, 1, 0], inputs=[("width", "INT", 1)]), links=[
                  [1, 1, 0, 2, 0, "INT"]])
    assert convert(file, catalog).graph["2"]["inputs"]["width"] == ["1", 0]


def test_muted_node_is_dropped_with_its_links(catalog: NodeCatalog) -> None:
    graph = convert(image_chain(middle_mode=2), catalog).graph
    assert "2" not in graph
    assert graph["3"]["inputs"] == {"filename_prefix": "out"}


def test_bypassed_node_is_wired_through(catalog: NodeCatalog) -> None:
    graph = convert(image_chain(middle_mode=4), catalog).graph
    assert "2" not in graph
    assert graph["3"]["inputs"]["images"] == ["1", 0]


def test_reroute_chain_and_notes(catalog: NodeCatalog) -> None:
    file = ui(node(1, "EmptyImage", [8, 8, 1, 0], outputs=[("IMAGE", [1])]),
              node(2, "Reroute", inputs=[("", "*", 1)], outputs=[("*", [2])]),
              node(3, "Reroute", inputs=[("", "*", 2)], outputs=[("*", [3])]),
              node(4, "SaveImage", ["r"], inputs=[("images", "IMAGE", 3)]),
              node(5, "Note", ["hello"]), node(6, "MarkdownNote", ["# hi"]),
              links=[[1, 1, 0, 2, 0, "*"], [2, 2, 0, 3, 0, "*"], [3, 3, 0, 4, 0, "IMAGE"]])
    graph = convert(file, catalog).graph
    assert set(graph) == {"1", "4"}
    assert graph["4"]["inputs"]["images"] == ["1", 0]


def test_primitive_node_feeds_every_target(catalog: NodeCatalog) -> None:
    file = ui(node(1, "PrimitiveNode", [777, "fixed"], outputs=[("INT", [1, 2])]),
              node(2, "KSampler", [1, "fixed", 2, 8, "euler", "normal", 1],
                   inputs=[("seed", "INT", 1)]),
              node(3, "RandomNoise", [5, "fixed"], inputs=[("noise_seed", "INT", 2)]),
              links=[[1, 1, 0, 2, 0, "INT"], [2, 1, 0, 3, 0, "INT"]])
    graph = convert(file, catalog).graph
    assert graph["2"]["inputs"]["seed"] == 777
    assert graph["3"]["inputs"]["noise_seed"] == 777
    assert "1" not in graph


def subgraph_file() -> dict[str, Any]:
    inner = {"id": "sg-1", "name": "Invert twice", "inputs": [
        {"id": "i0", "name": "image", "type": "IMAGE", "linkIds": [10]}],
        "outputs": [{"id": "o0", "name": "IMAGE", "type": "IMAGE", "linkIds": [12]}],
        "nodes": [node(1, "ImageInvert", inputs=[("image", "IMAGE", 10)], outputs=[
            ("IMAGE", [11])]), node(2, "ImageInvert", inputs=[("image", "IMAGE", 11)],
                                    outputs=[("IMAGE", [12])])],
        "links": [{"id": 10, "origin_id": -10, "origin_slot": 0, "target_id": 1,
                   "target_slot": 0, "type": "IMAGE"},
                  {"id": 11, "origin_id": 1, "origin_slot": 0, "target_id": 2,
                   "target_slot": 0, "type": "IMAGE"},
                  {"id": 12, "origin_id": 2, "origin_slot": 0, "target_id": -20,
                   "target_slot": 0, "type": "IMAGE"}]}
    return ui(node(1, "EmptyImage", [8, 8, 1, 0], outputs=[("IMAGE", [1])]),
              node(7, "sg-1", inputs=[("image", "IMAGE", 1)], outputs=[("IMAGE", [2])]),
              node(3, "SaveImage", ["s"], inputs=[("images", "IMAGE", 2)]),
              links=[[1, 1, 0, 7, 0, "IMAGE"], [2, 7, 0, 3, 0, "IMAGE"]],
              definitions={"subgraphs": [inner]})


def test_subgraph_is_flattened_with_path_ids(catalog: NodeCatalog) -> None:
    graph = convert(subgraph_file(), catalog).graph
    assert set(graph) == {"1", "7:1", "7:2", "3"}
    assert graph["7:1"]["inputs"]["image"] == ["1", 0]
    assert graph["7:2"]["inputs"]["image"] == ["7:1", 0]
    assert graph["3"]["inputs"]["images"] == ["7:2", 0]


def test_unknown_class_is_a_400_with_suggestions(catalog: NodeCatalog) -> None:
    file = ui(node(4, "KSamplr", [1, "fixed"], title="Mine"), links=[])
    with pytest.raises(ApiError) as raised:
        convert(file, catalog)
    assert raised.value.status_code == 400
    assert raised.value.details["missing_nodes"] == ["KSamplr"]
    problem = raised.value.details["validation_errors"][0]
    assert "UI node 4 'Mine'" in problem["error"]
    assert "KSampler" in problem["suggestion"]


def test_broken_link_is_a_finding_naming_the_ui_node(catalog: NodeCatalog) -> None:
    file = ui(node(3, "SaveImage", ["x"], inputs=[("images", "IMAGE", 99)], title="Keep"),
              links=[])
    problems = convert(file, catalog).problems
    assert problems[0].node_id == "3"
    assert "UI node 3 'Keep'" in problems[0].error


def test_overrides_apply_after_conversion_with_path_ids(catalog: NodeCatalog) -> None:
    file = subgraph_file()
    file["definitions"]["subgraphs"][0]["nodes"][0] = node(
        1, "ImageBlur", [1, 1.0], inputs=[("image", "IMAGE", 10)], outputs=[("IMAGE", [11])])
    prepared = prepare_workflow(file, {"7:1.blur_radius": 5, "filename_prefix": "z"},
                                ValidationRules(), catalog)
    assert prepared.converted
    assert prepared.graph["7:1"]["inputs"]["blur_radius"] == 5
    assert prepared.graph["3"]["inputs"]["filename_prefix"] == "z"
    assert "converted from ComfyUI's UI format" in prepared.warnings[0]


def test_validation_findings_name_the_ui_node(catalog: NodeCatalog) -> None:
    file = ui(node(1, "EmptyImage", [0, 8, 1, 0], title="Canvas", outputs=[("IMAGE", [1])]),
              node(2, "SaveImage", ["x"], inputs=[("images", "IMAGE", 1)]),
              links=[[1, 1, 0, 2, 0, "IMAGE"]])
    with pytest.raises(ApiError) as raised:
        prepare_workflow(file, {}, ValidationRules(), catalog)
    [problem] = raised.value.details["validation_errors"]
    assert problem["node_id"] == "1"
    assert problem["ui_node_id"] == 1
    assert problem["ui_title"] == "Canvas"


def test_the_convert_command_prints_the_api_format(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    saved = tmp_path / "saved.json"
    saved.write_text(json.dumps(subgraph_file()))
    assert main(["convert", str(saved), "--object-info", str(FIXTURE)]) == 0
    printed = capsys.readouterr()
    assert json.loads(printed.out)["7:2"]["inputs"]["image"] == ["7:1", 0]
    assert "converted from ComfyUI's UI format" in printed.err
    saved.write_text(json.dumps(ui(node(1, "NoSuchNode"), links=[])))
    assert main(["convert", str(saved), "--object-info", str(FIXTURE)]) == 1
    assert json.loads(capsys.readouterr().err)["details"]["missing_nodes"] == ["NoSuchNode"]


def group_file() -> dict[str, Any]:
    """A legacy group node: EmptyImage → ImageBlur inside, the blur's output used outside."""
    members = [node(-1, "EmptyImage", [8, 8, 1, 0], outputs=[("IMAGE", [])]),
               node(-1, "ImageBlur", [1, 1.0], inputs=[("image", "IMAGE", None)],
                    outputs=[("IMAGE", [])])]
    definition = {"nodes": members, "links": [[0, 0, 1, 0, 1, "IMAGE"]],
                  "external": [[1, 0, "IMAGE"]]}
    return ui(node(4, "workflow>pair", [64, 32, 1, 5, 3, 0.5], outputs=[("IMAGE", [1])]),
              node(2, "SaveImage", ["g"], inputs=[("images", "IMAGE", 1)]),
              links=[[1, 4, 0, 2, 0, "IMAGE"]], extra={"groupNodes": {"pair": definition}})


def test_group_node_members_run_with_the_instances_values(catalog: NodeCatalog) -> None:
    graph = convert(group_file(), catalog).graph
    assert set(graph) == {"4:0", "4:1", "2"}
    assert graph["4:0"]["inputs"] == {"width": 64, "height": 32, "batch_size": 1, "color": 5}
    assert graph["4:1"]["inputs"] == {"blur_radius": 3, "sigma": 0.5, "image": ["4:0", 0]}
    assert graph["2"]["inputs"]["images"] == ["4:1", 0]
