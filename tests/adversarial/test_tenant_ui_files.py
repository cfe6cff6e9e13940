"""A tenant who sends hostile UI-format files: subgraph bombs, subgraphs that contain
themselves, reroute loops and long chains, and files of the wrong shapes. Each is answered
with a 400 in the spec's error shape, quickly, never a 500 or a hang."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from comfy_serverless.errors import ApiError
from comfy_serverless.validation.catalog import NodeCatalog
from comfy_serverless.validation.ui_format import Conversion, convert_ui_workflow

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "object_info.json"
CATALOG = NodeCatalog.from_object_info(json.loads(FIXTURE.read_text()))


def link(link_id: int, origin: int, target: int, kind: str = "IMAGE") -> dict[str, Any]:
    return {"id": link_id, "origin_id": origin, "origin_slot": 0, "target_id": target,
            "target_slot": 0, "type": kind}


def instance(node_id: int, subgraph_id: str) -> dict[str, Any]:
    return {"id": node_id, "type": subgraph_id, "mode": 0, "inputs": [], "outputs": []}


def subgraph_bomb(levels: int, width: int) -> dict[str, Any]:
    """Each level holds `width` instances of the next: width ** levels nodes in all."""
    subgraphs = [{"id": f"level-{level}", "name": "bomb", "inputs": [], "outputs": [],
                  "links": [], "nodes": [instance(i, f"level-{level + 1}")
                                         for i in range(1, width + 1)]}
                 for level in range(levels)]
    subgraphs.append({"id": f"level-{levels}", "name": "leaf", "inputs": [], "outputs": [],
                      "links": [], "nodes": [{"id": 1, "type": "SaveImage", "mode": 0,
                                              "widgets_values": ["x"]}]})
    return {"nodes": [instance(1, "level-0")], "links": [],
            "definitions": {"subgraphs": subgraphs}}


async def refused(client: httpx.AsyncClient, workflow: dict[str, Any]) -> dict[str, Any]:
    started = time.monotonic()
    answer = await client.post("/v1/workflows/convert", json={"workflow": workflow})
    assert time.monotonic() - started < 5
    assert answer.status_code == 400, answer.text
    body: dict[str, Any] = answer.json()
    assert body["status"] == "error"
    assert body["error_code"] == "WORKFLOW_VALIDATION_FAILED"
    return body


async def test_a_subgraph_bomb_is_refused_before_it_expands(tenant_a: httpx.AsyncClient
                                                            ) -> None:
    body = await refused(tenant_a, subgraph_bomb(levels=8, width=10))
    assert "expands to more than" in body["message"]


async def test_a_subgraph_inside_itself_is_refused(tenant_a: httpx.AsyncClient) -> None:
    looped = {"nodes": [instance(1, "self")], "links": [], "definitions": {"subgraphs": [
        {"id": "self", "name": "me", "inputs": [], "outputs": [], "links": [],
         "nodes": [instance(1, "self")]}]}}
    body = await refused(tenant_a, looped)
    assert "contains an instance of itself" in body["message"]


async def test_a_reroute_loop_is_a_finding_on_the_node(tenant_a: httpx.AsyncClient) -> None:
    reroute = {"type": "Reroute", "mode": 0, "outputs": [{"name": "", "type": "*"}]}
    loop = {"nodes": [
        {**reroute, "id": 1, "inputs": [{"name": "", "type": "*", "link": 2}]},
        {**reroute, "id": 2, "inputs": [{"name": "", "type": "*", "link": 1}]},
        {"id": 3, "type": "SaveImage", "mode": 0, "widgets_values": ["x"],
         "inputs": [{"name": "images", "type": "IMAGE", "link": 3}]}],
        "links": [link(1, 1, 2), link(2, 2, 1), link(3, 2, 3)]}
    body = await refused(tenant_a, loop)
    problem = body["details"]["validation_errors"][0]
    assert problem["node_id"] == "3"
    assert "UI node 2 'Reroute'" in problem["error"]
    assert "loop" in problem["error"]


def test_the_longest_reroute_chain_allowed_converts() -> None:
    chain = 4 * 100 - 2  # the cap is four UI nodes per allowed API node
    nodes = [{"id": 1, "type": "EmptyImage", "mode": 0, "widgets_values": [8, 8, 1, 0]}]
    nodes += [{"id": i, "type": "Reroute", "mode": 0,
               "inputs": [{"name": "", "type": "*", "link": i - 1}]} for i in range(2, chain)]
    nodes.append({"id": chain, "type": "SaveImage", "mode": 0, "widgets_values": ["x"],
                  "inputs": [{"name": "images", "type": "IMAGE", "link": chain - 1}]})
    links = [link(i, i, i + 1) for i in range(1, chain)]
    graph = convert_ui_workflow({"nodes": nodes, "links": links}, CATALOG, max_nodes=100).graph
    assert graph[str(chain)]["inputs"]["images"] == ["1", 0]


async def test_convert_needs_a_key_and_answers_the_error_shape(service: Any) -> None:
    async with httpx.AsyncClient(base_url=service.base_url, timeout=30) as anonymous:
        answer = await anonymous.post("/v1/workflows/convert", json={"workflow": {}})
    assert answer.status_code == 401
    assert answer.json()["status"] == "error"


_SCALARS = st.none() | st.booleans() | st.integers(-30, 30) | st.text(max_size=4)
_VALUES = st.recursive(_SCALARS, lambda inner: st.lists(inner, max_size=4)
                       | st.dictionaries(st.sampled_from(
                           ["id", "type", "mode", "inputs", "outputs", "links", "link",
                            "name", "widgets_values", "linkIds", "origin_id", "target_id"]),
                           inner, max_size=5), max_leaves=20)
_NODE_TYPES = st.sampled_from(["Reroute", "PrimitiveNode", "KSampler", "SaveImage", "sg",
                               "ImageInvert", "Nope"])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(nodes=st.lists(st.fixed_dictionaries(
    {"id": st.integers(-20, 6), "type": _NODE_TYPES, "mode": st.sampled_from([0, 2, 4]),
     "inputs": _VALUES, "outputs": _VALUES, "widgets_values": _VALUES}), max_size=6),
    links=_VALUES, subgraph_nodes=_VALUES)
def test_files_of_any_shape_are_converted_or_refused(nodes: Any, links: Any,
                                                     subgraph_nodes: Any) -> None:
    file = {"nodes": nodes, "links": links, "definitions": {"subgraphs": [
        {"id": "sg", "nodes": subgraph_nodes, "links": links, "inputs": links,
         "outputs": links}]}}
    outcome = _converted_or_refused(file)
    if isinstance(outcome, ApiError):
        assert outcome.status_code == 400
    else:
        assert all(CATALOG.get(node["class_type"]) for node in outcome.graph.values())


def _converted_or_refused(file: dict[str, Any]) -> Conversion | ApiError:
    try:
        return convert_ui_workflow(file, CATALOG, max_nodes=100)
    except ApiError as error:
        return error
