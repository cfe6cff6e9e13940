"""The flat list of node instances the editor executes: subgraphs expanded, ids as paths.

A node inside a subgraph instance gets the id `<instance id>:<inner id>` (nested instances
add a segment each), the frontend's own scheme, so that errors and results point back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from comfy_serverless.validation.catalog import NodeCatalog, NodeSpec
from comfy_serverless.validation.ui_format.groups import (
    GroupDefinition,
    GroupDefinitions,
    MalformedGroup,
)
from comfy_serverless.validation.ui_format.model import SubgraphDefinition, UiGraph, UiNode
from comfy_serverless.validation.ui_format.widgets import (
    LiveInput,
    NodeTemplate,
    Widget,
    node_layout,
    widget_values,
)

__all__ = ["FRONTEND_ONLY", "BadGroupNode", "Instance", "Kind", "SubgraphCycle", "TooManyInstances",
           "execution_id", "flatten"]

# Classes that exist only in the editor. Reroute and PrimitiveNode pass values on; notes
# carry text for people.
FRONTEND_ONLY = frozenset({"Reroute", "PrimitiveNode", "Note", "MarkdownNote"})


class Kind(Enum):
    BACKEND = "backend"
    VIRTUAL = "virtual"
    SUBGRAPH = "subgraph"
    GROUP = "group"
    MISSING = "missing"


class SubgraphCycle(Exception):
    """A subgraph that contains an instance of itself."""


class BadGroupNode(Exception):
    """A group node instance whose group definition is malformed or not convertible."""

    def __init__(self, exec_id: str, node: UiNode, reason: str) -> None:
        super().__init__(reason)
        self.exec_id = exec_id
        self.node = node


class TooManyInstances(Exception):
    """Subgraph instances expand past the limit (nesting multiplies them)."""


@dataclass
class Instance:
    exec_id: str
    node: UiNode
    graph: UiGraph
    path: tuple[int, ...]
    kind: Kind
    inputs: list[LiveInput]
    output_types: list[Any]
    parent: Instance | None = None
    spec: NodeSpec | None = None
    subgraph: SubgraphDefinition | None = None
    widgets: tuple[Widget, ...] = ()
    group: GroupDefinition | None = None  # for a group node instance
    group_of: Instance | None = None  # for a member of one
    member_index: int = -1
    values: dict[str, Any] = field(default_factory=dict)
    defaulted: list[str] = field(default_factory=list)


def _file_inputs(node: UiNode) -> list[LiveInput]:
    return [LiveInput(slot.name, slot.type, slot.link) for slot in node.inputs]


def execution_id(path: tuple[int, ...], node_id: int) -> str:
    """`<instance id>:…:<node id>`, the editor's id for a node inside subgraph instances."""
    return ":".join(map(str, (*path, node_id))) if path else str(node_id)


class _Templates:
    """Each class's NodeTemplate, worked out on first use."""

    def __init__(self, catalog: NodeCatalog, groups: GroupDefinitions) -> None:
        self.catalog = catalog
        self.groups = groups
        self.found: dict[str, tuple[NodeSpec, NodeTemplate] | None] = {}

    def get(self, class_type: str) -> tuple[NodeSpec, NodeTemplate] | None:
        if class_type not in self.found:
            spec = self.catalog.get(class_type)
            self.found[class_type] = None if spec is None else (spec, NodeTemplate.of(spec))
        return self.found[class_type]


def _instance(node: UiNode, graph: UiGraph, path: tuple[int, ...], parent: Instance | None,
              templates: _Templates, subgraphs: dict[str, SubgraphDefinition]) -> Instance:
    exec_id = execution_id(path, node.id)
    if (known := templates.get(node.type)) is not None:
        spec, template = known
        values, defaulted = widget_values(node, template)
        return Instance(exec_id, node, graph, path, Kind.BACKEND, node_layout(node, template),
                        list(spec.outputs), parent, spec, widgets=template.widgets,
                        values=values, defaulted=defaulted)
    outputs = [slot.type for slot in node.outputs]
    try:
        group = templates.groups.get(node.type)
    except MalformedGroup as problem:
        raise BadGroupNode(exec_id, node, str(problem)) from problem
    if group is not None:
        assert group.spec is not None
        template = NodeTemplate.of(group.spec)
        values, defaulted = widget_values(node, template)
        return Instance(exec_id, node, graph, path, Kind.GROUP, node_layout(node, template),
                        list(group.spec.outputs), parent, group.spec, widgets=template.widgets,
                        values=values, defaulted=defaulted, group=group)
    if node.type in subgraphs:
        definition = subgraphs[node.type]
        links = {slot.name: slot.link for slot in node.inputs}
        inputs = [LiveInput(slot.name, slot.type, links.get(slot.name))
                  for slot in definition.inputs]
        return Instance(exec_id, node, graph, path, Kind.SUBGRAPH, inputs,
                        [slot.type for slot in definition.outputs], parent,
                        subgraph=definition)
    kind = Kind.VIRTUAL if node.type in FRONTEND_ONLY else Kind.MISSING
    return Instance(exec_id, node, graph, path, kind, _file_inputs(node), outputs, parent)


def _members(group_node: Instance, templates: _Templates) -> list[Instance]:
    """A group node instance's members, their widget values taken from the instance's."""
    assert group_node.group is not None
    members = []
    targets = group_node.group.widget_targets
    for index, (member, spec) in enumerate(zip(group_node.group.members,
                                               group_node.group.member_specs, strict=True)):
        known = templates.get(spec.class_type)
        assert known is not None
        template = known[1]
        values, _ = widget_values(member, template)
        for name, (target, input_name) in targets.items():
            if target == index:
                values[input_name] = group_node.values[name]
        members.append(Instance(
            f"{group_node.exec_id}:{index}", member, group_node.graph, group_node.path,
            Kind.BACKEND, node_layout(member, template), list(spec.outputs), spec=spec,
            widgets=template.widgets, values=values, group_of=group_node, member_index=index))
    return members


def flatten(graph: UiGraph, catalog: NodeCatalog, subgraphs: dict[str, SubgraphDefinition],
            limit: int, groups: GroupDefinitions) -> dict[str, Instance]:
    """Every node instance by its execution id, subgraph instances included; raises
    TooManyInstances past `limit`, before expanding any further."""
    found: dict[str, Instance] = {}
    templates = _Templates(catalog, groups)

    def visit(graph: UiGraph, path: tuple[int, ...], parent: Instance | None,
              open_subgraphs: tuple[str, ...]) -> None:
        for node in graph.nodes.values():
            instance = _instance(node, graph, path, parent, templates, subgraphs)
            found[instance.exec_id] = instance
            if instance.group is not None:
                found.update((m.exec_id, m) for m in _members(instance, templates))
            if len(found) > limit:
                raise TooManyInstances(limit)
            if instance.subgraph is not None:
                if instance.subgraph.id in open_subgraphs:
                    raise SubgraphCycle(instance.exec_id)
                visit(instance.subgraph.graph, (*path, node.id), instance,
                      (*open_subgraphs, instance.subgraph.id))

    visit(graph, (), None, ())
    return found
