"""Turns a submitted `workflow` into ComfyUI's API-format graph, checking its structure.

Accepted: `{"nodes": {id: node}, "metadata": {...}}` as in the spec, or a bare API-format
graph `{id: {"class_type", "inputs"}}`. A UI-format file (nodes as a list, plus links) is
converted before it gets here (validation/prepare.py); given one directly, this refuses it.
Every structural problem is reported at once.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from comfy_serverless.validation.findings import ValidationProblem, workflow_invalid
from comfy_serverless.validation.rules import ValidationRules

__all__ = [
    "Graph",
    "ParsedWorkflow",
    "ValidationProblem",
    "copy_graph",
    "cycle_problems",
    "is_link",
    "parse_workflow",
    "size_problems",
    "workflow_invalid",
    "workflow_signature",
]

Graph = dict[str, dict[str, Any]]

@dataclass(frozen=True)
class ParsedWorkflow:
    """The well-formed nodes of a workflow, and the structural problems of the rest.

    Problems are kept, not raised, so that the validator can report them together with
    everything else it finds.
    """

    graph: Graph
    metadata: dict[str, Any] = field(default_factory=dict)
    problems: list[ValidationProblem] = field(default_factory=list)


def _split_envelope(raw: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    nodes = raw.get("nodes")
    if isinstance(nodes, list) and "links" in raw:
        raise workflow_invalid([ValidationProblem(
            None, "This is a ComfyUI UI-format workflow (nodes as a list, with links)",
            "In ComfyUI, enable dev mode options and use 'Save (API Format)', "
            "then submit that JSON as `workflow` (or as `workflow.nodes`)")])
    if isinstance(nodes, dict):
        metadata = raw.get("metadata")
        return nodes, metadata if isinstance(metadata, dict) else {}
    return raw, {}


def is_link(value: Any) -> bool:
    return (isinstance(value, list) and len(value) == 2 and isinstance(value[0], str | int)
            and isinstance(value[1], int) and not isinstance(value[1], bool))


def _node_problems(node_id: str, node: Any, graph: dict[str, Any]) -> list[ValidationProblem]:
    if not isinstance(node, dict):
        return [ValidationProblem(node_id, "Node must be an object",
                                  'Give it "class_type" and "inputs"')]
    problems = []
    if not isinstance(node.get("class_type"), str) or not node.get("class_type"):
        problems.append(ValidationProblem(node_id, "Missing required field 'class_type'",
                                          "Set class_type to a ComfyUI node class"))
    inputs = node.get("inputs")
    if not isinstance(inputs, dict):
        problems.append(ValidationProblem(node_id, "Missing required field 'inputs'",
                                          'Give the node an "inputs" object, even if empty'))
        return problems
    for name, value in inputs.items():
        if is_link(value) and str(value[0]) not in graph:
            problems.append(ValidationProblem(
                node_id, f"Input '{name}' links to node '{value[0]}', which does not exist",
                f"Link '{name}' to an existing node id: {', '.join(sorted(graph)[:10])}"))
    return problems


def _upstream_ids(graph: Graph, node_id: str) -> list[str]:
    return [str(value[0]) for value in graph[node_id]["inputs"].values()
            if is_link(value) and str(value[0]) in graph]


def cycle_problems(graph: Graph) -> list[ValidationProblem]:
    """A depth-first walk with its own stack (a chain of any length never recurses)."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    for root in graph:
        if root in state:
            continue
        state[root] = 1
        stack = [(root, iter(_upstream_ids(graph, root)))]
        while stack:
            node_id, pending = stack[-1]
            upstream = next(pending, None)
            if upstream is None:
                state[node_id] = 2
                stack.pop()
            elif state.get(upstream) == 1:
                return [ValidationProblem(upstream, "The graph has a cycle through this node",
                                          "Remove a link so that no node depends on itself")]
            elif upstream not in state:
                state[upstream] = 1
                stack.append((upstream, iter(_upstream_ids(graph, upstream))))
    return []


def size_problems(nodes: dict[str, Any], rules: ValidationRules) -> list[ValidationProblem]:
    """max_nodes, max_node_inputs and max_connections, counted in one pass without walking
    the graph."""
    problems = []
    if len(nodes) > rules.max_nodes:
        problems.append(ValidationProblem(
            None, f"The workflow has {len(nodes)} nodes, more than max_nodes {rules.max_nodes}",
            "Split it into smaller workflows"))
    links, crowded = 0, []
    for node_id, node in nodes.items():
        inputs = node.get("inputs") if isinstance(node, dict) else None
        if not isinstance(inputs, dict):
            continue
        if len(inputs) > rules.max_node_inputs:
            crowded.append(ValidationProblem(
                str(node_id), f"The node gives {len(inputs)} inputs, more than max_node_inputs "
                              f"{rules.max_node_inputs}",
                "Give only the inputs its class declares"))
        links += sum(1 for value in inputs.values() if isinstance(value, list) and is_link(value))
    if links > rules.max_connections:
        problems.append(ValidationProblem(
            None, f"The workflow has {links} connections, more than max_connections "
                  f"{rules.max_connections}", "Split it into smaller workflows"))
    return problems + crowded[:1]


def parse_workflow(raw: dict[str, Any], rules: ValidationRules | None = None) -> ParsedWorkflow:
    """The workflow's graph and structural problems; with `rules`, a graph over the size
    limits is refused at once, before any walk over it."""
    nodes, metadata = _split_envelope(raw)
    if not isinstance(nodes, dict) or not nodes:
        raise workflow_invalid([ValidationProblem(
            None, "The workflow has no nodes",
            "Submit an API-format graph: {\"<id>\": {\"class_type\": ..., \"inputs\": {...}}}")])
    if rules is not None and (too_large := size_problems(nodes, rules)):
        raise workflow_invalid(too_large)
    problems = [p for node_id, node in nodes.items()
                for p in _node_problems(str(node_id), node, nodes)]
    graph: Graph = {str(node_id): _with_text_link_ids(node) for node_id, node in nodes.items()
                    if _well_formed(node)}
    problems += cycle_problems(graph)
    return ParsedWorkflow(graph, metadata, problems)


def _with_text_link_ids(node: dict[str, Any]) -> dict[str, Any]:
    """The node with every link's node id as text: ComfyUI looks `[1, 0]` up as the integer
    1, which no node id is, so the link `[1, 0]` is sent as `["1", 0]` (documented)."""
    if not any(isinstance(value, list) and is_link(value) and not isinstance(value[0], str)
               for value in node["inputs"].values()):
        return node
    inputs = {name: [str(value[0]), value[1]] if is_link(value) else value
              for name, value in node["inputs"].items()}
    return {**node, "inputs": inputs}


def copy_graph(graph: Graph) -> Graph:
    """A copy whose nodes and inputs may be changed (values themselves are never mutated)."""
    return {node_id: {**node, "inputs": dict(node["inputs"])} for node_id, node in graph.items()}


def _well_formed(node: Any) -> bool:
    return (isinstance(node, dict) and isinstance(node.get("class_type"), str)
            and bool(node["class_type"]) and isinstance(node.get("inputs"), dict))


def workflow_signature(graph: Graph) -> str:
    """What makes two workflows cost alike: their node classes and the models they name."""
    classes = sorted(str(node["class_type"]) for node in graph.values())
    models = sorted(
        value for node in graph.values() for name, value in node["inputs"].items()
        if name.endswith("_name") and isinstance(value, str)
    )
    digest = hashlib.sha256(json.dumps([classes, models]).encode()).hexdigest()
    return digest[:32]
