"""UI format → API format, as the editor's own export (`graphToPrompt`) does it.

Pure: it reads the file and the merged node catalog, and touches no store and no engine.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from comfy_serverless.errors import ApiError
from comfy_serverless.validation.catalog import NodeCatalog
from comfy_serverless.validation.findings import Findings, ValidationProblem, workflow_invalid
from comfy_serverless.validation.ui_format.flatten import (
    BadGroupNode,
    Instance,
    Kind,
    SubgraphCycle,
    TooManyInstances,
    execution_id,
    flatten,
)
from comfy_serverless.validation.ui_format.groups import (
    UnsupportedGroup,
    group_count,
    group_link_entries,
    group_member_entries,
    read_groups,
)
from comfy_serverless.validation.ui_format.model import (
    link_entries,
    node_entries,
    read_ui_file,
    subgraph_count,
)
from comfy_serverless.validation.ui_format.resolve import LinkProblem, Origin, Resolver
from comfy_serverless.validation.ui_format.widgets import EDITOR_CAPTURE_CLASSES, as_prompt_value

__all__ = ["Conversion", "UiNodeRef", "convert_ui_workflow"]

MUTED, BYPASSED = 2, 4
# A UI file may hold this many node instances (subgraphs expanded) per API node allowed:
# reroutes, primitives and notes take room in the editor but none in the prompt.
UI_NODES_PER_API_NODE = 4
# And this many links and sockets (node inputs and outputs, subgraph slots) per UI node.
UI_LINKS_PER_UI_NODE = 64
_RELINK = "Fix the link in ComfyUI and save the workflow again"


@dataclass(frozen=True)
class UiNodeRef:
    """Where an API node comes from in the file: its UI id (inside its subgraph) and title."""

    ui_id: int
    title: str


@dataclass(frozen=True)
class Conversion:
    graph: dict[str, dict[str, Any]]
    warnings: list[str] = field(default_factory=list)
    problems: list[ValidationProblem] = field(default_factory=list)
    sources: dict[str, UiNodeRef] = field(default_factory=dict)


def _ref(instance: Instance) -> UiNodeRef:
    display = instance.spec.display_name if instance.spec else instance.node.type
    return UiNodeRef(instance.node.id, instance.node.title or display)


def _label(instance: Instance) -> str:
    ref = _ref(instance)
    return f"UI node {ref.ui_id} '{ref.title}' (API id {instance.exec_id})"


def _refuse_missing(instances: list[Instance], catalog: NodeCatalog) -> None:
    findings = Findings()
    for instance in instances:
        class_type = instance.node.type
        similar = catalog.similar(class_type)
        hint = (f"Did you mean {' or '.join(similar)}?" if similar else
                "Install the node pack that provides it on the workers")
        findings.error(instance.exec_id, f"{_label(instance)}: node class '{class_type}' is "
                                         "not available on any worker", hint)
        findings.missing_node(class_type)
    findings.raise_if_any()


def _apply_primitives(instances: Mapping[str, Instance]) -> None:
    """A PrimitiveNode's value replaces the widget value of every input it feeds."""
    for primitive in instances.values():
        stored = primitive.node.widgets_values
        if primitive.node.type != "PrimitiveNode" or not isinstance(stored, list) or not stored:
            continue
        for link_id in primitive.node.outputs[0].links if primitive.node.outputs else ():
            link = primitive.graph.links.get(link_id)
            target = None if link is None else instances.get(
                execution_id(primitive.path, link.target_id))
            if target is None or target.kind is not Kind.BACKEND:
                continue
            fed = next((i.name for i in target.inputs if i.link == link_id), None)
            if fed in target.values:
                target.values[fed] = stored[0]


class _Builder:
    def __init__(self, instances: dict[str, Instance]) -> None:
        self.instances = instances
        self.resolver = Resolver(instances)
        self.problems: list[ValidationProblem] = []
        self.warnings: list[str] = []

    def build(self) -> dict[str, dict[str, Any]]:
        graph: dict[str, dict[str, Any]] = {}
        for instance in self.instances.values():
            if instance.kind is Kind.BACKEND and instance.node.mode not in (MUTED, BYPASSED):
                graph[instance.exec_id] = self._node(instance)
            elif instance.kind is Kind.BACKEND:
                action = "muted: dropped" if instance.node.mode == MUTED else (
                    "bypassed: its inputs were wired through to its outputs")
                self.warnings.append(f"{_label(instance)} is {action}")
        for node in graph.values():
            for name, value in list(node["inputs"].items()):
                if isinstance(value, list) and len(value) == 2 and value[0] not in graph:
                    del node["inputs"][name]
        return graph

    def _node(self, instance: Instance) -> dict[str, Any]:
        if instance.node.type in EDITOR_CAPTURE_CLASSES:
            self.problems.append(ValidationProblem(
                instance.exec_id, f"{_label(instance)}: its input is captured by the editor "
                                  "itself (canvas, camera or microphone) when it queues",
                "Queue it in ComfyUI, or export the API format there and submit that"))
        inputs = {w.name: as_prompt_value(instance.values[w.name])
                  for w in instance.widgets if w.sent}
        for slot, live in enumerate(instance.inputs):
            try:
                resolved = self.resolver.resolve_input(instance, slot)
            except LinkProblem as problem:
                self.problems.append(ValidationProblem(
                    instance.exec_id, f"{_label(problem.instance)}: {problem}", _RELINK))
                continue
            if isinstance(resolved, Origin):
                inputs[live.name] = [resolved.exec_id, resolved.slot]
            elif resolved is not None:
                inputs[live.name] = as_prompt_value(resolved.value)
        if instance.defaulted:
            self.warnings.append(
                f"{_label(instance)}: the file has no value for "
                f"{', '.join(instance.defaulted)}; the catalog's default was used")
        assert instance.spec is not None
        return {"inputs": inputs, "class_type": instance.spec.class_type,
                "_meta": {"title": _ref(instance).title}}


def _too_many(limit: int, max_nodes: int) -> ApiError:
    return workflow_invalid([ValidationProblem(
        None, f"The UI file expands to more than {limit} nodes (subgraphs and group nodes "
              f"included), {UI_NODES_PER_API_NODE} per API node allowed (max_nodes "
              f"{max_nodes})", "Split it into smaller workflows")])


def _refuse_oversized(raw: Mapping[str, Any], limit: int, max_nodes: int) -> None:
    """Every node the file holds (root, subgraph and group definitions, used or not, each
    definition counted as one more) counts against the limit, and links and sockets against
    UI_LINKS_PER_UI_NODE times it, before any is read: reading 400k of them would hold the
    event loop for seconds. Each count walks only what the one before it bounded."""
    if (subgraph_count(raw) + group_count(raw) > limit
            or node_entries(raw) + group_member_entries(raw) > limit):
        raise _too_many(limit, max_nodes)
    links = UI_LINKS_PER_UI_NODE * limit
    if link_entries(raw) + group_link_entries(raw) > links:
        raise workflow_invalid([ValidationProblem(
            None, f"The UI file holds more than {links} links and node sockets, "
                  f"{UI_LINKS_PER_UI_NODE} per UI node allowed", "Split it into smaller "
                  "workflows")])


def _instances(raw: Mapping[str, Any], catalog: NodeCatalog, max_nodes: int
               ) -> dict[str, Instance]:
    limit = UI_NODES_PER_API_NODE * max_nodes
    _refuse_oversized(raw, limit, max_nodes)
    root, subgraphs = read_ui_file(raw)
    try:
        return flatten(root, catalog, subgraphs, limit, read_groups(raw, catalog))
    except BadGroupNode as bad:
        hint = ("Convert the group node to a subgraph in ComfyUI and save again"
                if isinstance(bad.__cause__, UnsupportedGroup) else
                "Recreate the group node in ComfyUI and save the workflow again")
        raise workflow_invalid([ValidationProblem(
            bad.exec_id, f"UI node {bad.node.id} '{bad.node.title or bad.node.type}': "
                         f"group node {bad}", hint)]) from bad
    except SubgraphCycle as cycle:
        raise workflow_invalid([ValidationProblem(
            str(cycle), "A subgraph contains an instance of itself",
            "Remove the nested instance in ComfyUI")]) from cycle
    except TooManyInstances as too_many:
        raise _too_many(limit, max_nodes) from too_many


def convert_ui_workflow(raw: Mapping[str, Any], catalog: NodeCatalog, *, max_nodes: int
                        ) -> Conversion:
    """The API-format graph of a UI-format file; raises a 400 for classes that no worker
    has, and returns the link problems it found with the graph."""
    instances = _instances(raw, catalog, max_nodes)
    missing = [i for i in instances.values()
               if i.kind is Kind.MISSING and i.node.mode not in (MUTED, BYPASSED)]
    if missing:
        _refuse_missing(missing, catalog)
    _apply_primitives(instances)
    builder = _Builder(instances)
    try:
        graph = builder.build()
    except RecursionError as deep:
        raise workflow_invalid([ValidationProblem(
            None, "The UI file's links pass through too many reroutes, bypassed nodes or "
                  "subgraphs in a row", "Link the nodes more directly")]) from deep
    warnings = [f"The workflow was converted from ComfyUI's UI format ({len(graph)} nodes "
                "to run); see docs/reference/workflow-formats.md", *builder.warnings]
    sources = {exec_id: _ref(i) for exec_id, i in instances.items() if exec_id in graph}
    return Conversion(graph, warnings, builder.problems, sources)
