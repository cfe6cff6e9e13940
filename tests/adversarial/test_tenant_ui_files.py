"""A tenant who sends hostile UI-format files: subgraph bombs, subgraphs that contain
themselves, reroute loops and long chains, and files of the wrong shapes. Each is answered
with a 400 in the spec's error shape, quickly, never a 500 or a hang."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
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


async def refused(client: httpx.AsyncClient, workflow: dict[str, Any], *,
                  within: float | None = 5, path: str = "/v1/workflows/convert"
                  ) -> dict[str, Any]:
    started = time.monotonic()
    # Sent as Python's json writes it, Infinity included (httpx refuses to write that).
    answer = await client.post(path, content=json.dumps({"workflow": workflow}),
                               headers={"content-type": "application/json"})
    took = time.monotonic() - started
    print(f"{path} answered {answer.status_code} in {took:.2f} s")
    if within is not None:
        assert took < within
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


async def test_a_huge_group_definition_is_refused_before_it_is_built(
        tenant_a: httpx.AsyncClient) -> None:
    """The reviewer's 5 MB body: one unused group of 262,144 members. Counted with len()
    before any member is read, so the loop is not held (the time is printed, not asserted:
    the machine may be busy)."""
    members = [{"type": "KSampler"}] * 262_144
    bomb = {"nodes": [], "links": [], "extra": {"groupNodes": {"g": {"nodes": members}}}}
    for path in ("/v1/workflows/convert", "/v1/workflows/execute"):
        body = await refused(tenant_a, bomb, within=None, path=path)
        assert "more than 400 nodes" in body["message"]


async def test_a_file_of_400k_notes_is_refused_before_it_is_read(
        tenant_a: httpx.AsyncClient) -> None:
    notes = {"nodes": [{"type": "Note"}] * 400_000, "links": []}
    body = await refused(tenant_a, notes, within=None)
    assert "more than 400 nodes" in body["message"]


def test_nodes_count_in_every_definition_and_group_before_reading() -> None:
    """Root nodes, subgraph definitions and group definitions share the one cap."""
    def notes(count: int) -> list[dict[str, Any]]:
        return [{"id": i, "type": "Note"} for i in range(count)]

    spread = {"nodes": notes(150), "links": [],
              "definitions": {"subgraphs": [{"id": "unused", "nodes": notes(150)}]},
              "extra": {"groupNodes": {"g": {"nodes": notes(150)}}}}
    outcome = _converted_or_refused(spread)
    assert isinstance(outcome, ApiError)
    assert outcome.status_code == 400
    assert "more than 400 nodes" in outcome.message


@pytest.mark.parametrize(("name", "file", "refusal"), [
    ("1M empty subgraph definitions",
     {"nodes": [], "links": [], "definitions": {"subgraphs": [{}] * 1_000_000}},
     "more than 400 nodes"),
    ("600k empty group definitions",
     {"nodes": [], "links": [], "extra": {"groupNodes": {f"g{i}": {} for i in range(600_000)}}},
     "more than 400 nodes"),
    ("800k links", {"nodes": [], "links": [[0, 0, 0, 0, 0]] * 800_000},
     "more than 25600 links"),
    ("500k inputs on one node", {"nodes": [{"id": 1, "type": "SaveImage", "inputs": [
        {"name": "a", "link": None}] * 500_000}], "links": []}, "more than 25600 links"),
    ("800k links in a group", {"nodes": [{"id": 1, "type": "workflow>g"}], "links": [],
                               "extra": {"groupNodes": {"g": {"nodes": [{"type": "Note"}],
                                                              "links": [[0, 0, 0, 0]] * 800_000}}}},
     "more than 25600 links"),
])
def test_definitions_links_and_sockets_count_before_reading(name: str, file: dict[str, Any],
                                                            refusal: str) -> None:
    """Each cost seconds of the event loop when read (1M definitions 3.6 s); each is
    counted first. The time is printed, not asserted."""
    started = time.monotonic()
    outcome = _converted_or_refused(file)
    print(f"{name}: refused in {time.monotonic() - started:.3f} s")
    assert isinstance(outcome, ApiError)
    assert refusal in outcome.message


def test_an_unused_group_is_not_built() -> None:
    """A group no node uses is not read: its members are not checked against the catalog."""
    unused = {"nodes": [{"id": 1, "type": "SaveImage", "mode": 0, "widgets_values": ["x"]}],
              "links": [], "extra": {"groupNodes": {"g": {"nodes": [{"type": "Nope"}],
                                                          "links": [[0, None, 0, 0]]}}}}
    outcome = _converted_or_refused(unused)
    assert isinstance(outcome, Conversion), outcome
    assert set(outcome.graph) == {"1"}


def group_user(definition: dict[str, Any]) -> dict[str, Any]:
    return {"nodes": [{"id": 7, "type": "workflow>g", "mode": 0, "title": "My group"}],
            "links": [], "extra": {"groupNodes": {"g": definition}}}


async def test_malformed_group_definitions_are_a_finding_on_the_node(
        tenant_a: httpx.AsyncClient) -> None:
    """The reviewer's 500s: a null in a group link, a string in `external`, a member index
    out of range; each is a 400 naming the UI node that uses the group."""
    member = {"type": "ImageInvert", "inputs": [{"name": "image", "type": "IMAGE"}],
              "outputs": [{"name": "IMAGE", "type": "IMAGE"}]}
    for definition in ({"nodes": [], "links": [[0, None, 0, 0]]},
                       {"nodes": [], "external": [["a", 0]]},
                       {"nodes": [member], "links": [[5, 0, 0, 0]]},
                       {"nodes": [member, member], "links": [[0, 0, 1, 1.5]]}):
        for path in ("/v1/workflows/convert", "/v1/workflows/execute"):
            body = await refused(tenant_a, group_user(definition), path=path)
            problem = body["details"]["validation_errors"][0]
            assert problem["node_id"] == "7", body
            assert "UI node 7 'My group'" in problem["error"], body


async def test_an_infinite_node_id_is_a_400(tenant_a: httpx.AsyncClient) -> None:
    """Execute and convert both refuse Infinity at the edge, naming where it is; the
    converter's own handling of it (for `comfy-serverless convert`) is the next test."""
    infinite = {"nodes": [{"id": float("inf"), "type": "Nope", "mode": 0}], "links": []}
    for route in ("/v1/workflows/execute", "/v1/workflows/convert"):
        answer = await tenant_a.post(route, content=json.dumps({"workflow": infinite}),
                                     headers={"content-type": "application/json"})
        assert answer.status_code == 400, answer.text
        assert answer.json()["error_code"] == "INVALID_REQUEST", answer.text
        assert "workflow.nodes.0.id" in answer.text, answer.text


def test_infinity_in_a_file_is_no_crash() -> None:
    """`comfy-serverless convert` reads files with Python's json, which reads Infinity: an
    Infinity node id or group link is a 400 there too, not an OverflowError."""
    infinite = {"nodes": [{"id": float("inf"), "type": "Nope", "mode": 0}], "links": []}
    outcome = _converted_or_refused(infinite)
    assert isinstance(outcome, ApiError)
    assert outcome.details["missing_nodes"] == ["Nope"]
    member = {"type": "ImageInvert"}
    outcome = _converted_or_refused(group_user({"nodes": [member, member],
                                                "links": [[0, 0, 1, float("inf")]]}))
    assert isinstance(outcome, ApiError)
    assert outcome.details["validation_errors"][0]["node_id"] == "7"


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


_SCALARS = (st.none() | st.booleans() | st.integers(-30, 30) | st.text(max_size=4)
            | st.sampled_from([float("inf"), float("-inf"), float("nan"), 1.5, 10**30]))
_VALUES = st.recursive(_SCALARS, lambda inner: st.lists(inner, max_size=4)
                       | st.dictionaries(st.sampled_from(
                           ["id", "type", "mode", "inputs", "outputs", "links", "link",
                            "name", "widgets_values", "linkIds", "origin_id", "target_id"]),
                           inner, max_size=5), max_leaves=20)
_NODE_TYPES = st.sampled_from(["Reroute", "PrimitiveNode", "KSampler", "SaveImage", "sg",
                               "ImageInvert", "Nope", "workflow>g", "workflow/g"])
# Group links and `external` entries: `[origin, slot, target, slot, type]`, of odd scalars.
_GROUP_LINKS = st.lists(st.lists(st.integers(-2, 3) | _SCALARS, max_size=6), max_size=4)
_MEMBERS = st.lists(st.fixed_dictionaries(
    {"type": _NODE_TYPES, "mode": st.sampled_from([0, 2, 4])},
    optional={"id": _SCALARS, "title": _SCALARS, "inputs": _VALUES, "outputs": _VALUES,
              "widgets_values": _VALUES}), max_size=3)
_GROUP = st.fixed_dictionaries({}, optional={
    "nodes": _MEMBERS | _VALUES, "links": _GROUP_LINKS | _VALUES,
    "external": _GROUP_LINKS | _VALUES})
_GROUP_NODES = st.dictionaries(st.sampled_from(["g", "h"]), _GROUP | _VALUES, max_size=2)
_EXTRA = st.fixed_dictionaries({"groupNodes": _GROUP_NODES}) | _VALUES
# Subgraph definitions of odd shapes: ids of any type, slots and nodes of any shape.
_SUBGRAPH = st.fixed_dictionaries({"id": st.sampled_from(["sg", "sg", 1, None])}, optional={
    "name": _SCALARS, "nodes": _VALUES, "links": _VALUES, "inputs": _VALUES,
    "outputs": _VALUES})
_DEFINITIONS = st.fixed_dictionaries(
    {"subgraphs": st.lists(_SUBGRAPH | _VALUES, max_size=3) | _VALUES}) | _VALUES


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(nodes=st.lists(st.fixed_dictionaries(
    {"id": st.integers(-20, 6) | _SCALARS, "type": _NODE_TYPES,
     "mode": st.sampled_from([0, 2, 4]), "inputs": _VALUES, "outputs": _VALUES,
     "widgets_values": _VALUES}), max_size=6),
    links=_VALUES, subgraph_nodes=_VALUES, definitions=_DEFINITIONS, extra=_EXTRA)
# The reviewer's three crashes, always tried.
@example(nodes=[{"id": 1, "type": "workflow>g", "mode": 0}], links=[], subgraph_nodes=[],
         definitions={}, extra={"groupNodes": {"g": {"nodes": [], "links": [[0, None, 0, 0]]}}})
@example(nodes=[{"id": 1, "type": "workflow>g", "mode": 0}], links=[], subgraph_nodes=[],
         definitions={}, extra={"groupNodes": {"g": {"nodes": [], "external": [["a", 0]]}}})
@example(nodes=[{"id": float("inf"), "type": "SaveImage", "mode": 0}], links=[],
         subgraph_nodes=[], definitions={}, extra={})
def test_files_of_any_shape_are_converted_or_refused(nodes: Any, links: Any,
                                                     subgraph_nodes: Any, definitions: Any,
                                                     extra: Any) -> None:
    file = {"nodes": nodes, "links": links, "extra": extra, "definitions": {"subgraphs": [
        {"id": "sg", "nodes": subgraph_nodes, "links": links, "inputs": links,
         "outputs": links}]}}
    outcome = _converted_or_refused(file)
    if isinstance(outcome, ApiError):
        assert outcome.status_code == 400
    else:
        assert all(CATALOG.get(node["class_type"]) for node in outcome.graph.values())
    outcome = _converted_or_refused({**file, "definitions": definitions})
    assert not isinstance(outcome, ApiError) or outcome.status_code == 400


def _converted_or_refused(file: dict[str, Any]) -> Conversion | ApiError:
    try:
        return convert_ui_workflow(file, CATALOG, max_nodes=100)
    except ApiError as error:
        return error
