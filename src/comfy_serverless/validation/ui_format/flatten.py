"""The flat list of node instances the editor executes: subgraphs expanded, ids as paths.

A node inside a subgraph instance gets the id `<instance id>:<inner id>` (nested instances
add a segment each), the frontend's own scheme, so that errors and results point back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from comfy_serverless.validation.catalog import NodeCatalog, NodeSpec
from comfy_serverless.validation.ui_format.model import SubgraphDefinition, UiGraph, UiNode
from comfy_serverless.validation.ui_format.widgets import (
    LiveInput,
    Widget,
    node_layout,
    widget_values,
)

__all__ = ["FRONTEND_ONLY", "Instance", "Kind", "SubgraphCycle", "TooManyInstances", "flatten"]

# Classes that exist only in the editor. Reroute and PrimitiveNode pass values on; notes
# carry text for people.
FRONTEND_ONLY = frozenset({"Reroute", "PrimitiveNode", "Note", "MarkdownNote"})


class Kind(Enum):
    BACKEND = "backend"
    VIRTUAL = "virtual"
    SUBGRAPH = "subgraph"
    MISSING = "missing"


class SubgraphCycle(Exception):
    """A subgraph that contains an instance of itself."""


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
    widgets: list[Widget] = field(default_factory=list)
    values: dict[str, Any] = field(default_factory=dict)
    defaulted: list[str] = field(default_factory=list)


def _file_inputs(node: UiNode) -> list[LiveInput]:
    return [LiveInput(slot.name, slot.type, slot.link) for slot in node.inputs]


def _instance(node: UiNode, graph: UiGraph, path: tuple[int, ...], parent: Instance | None,
              catalog: NodeCatalog, subgraphs: dict[str, SubgraphDefinition]) -> Instance:
    exec_id = ":".join(str(part) for part in (*path, node.id))
    spec = catalog.get(node.type)
    if spec is not None:
        inputs, widgets = node_layout(node, spec)
        values, defaulted = widget_values(node, spec, widgets)
        return Instance(exec_id, node, graph, path, Kind.BACKEND, inputs, list(spec.outputs),
                        parent, spec, widgets=widgets, values=values, defaulted=defaulted)
    outputs = [slot.type for slot in node.outputs]
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


def flatten(graph: UiGraph, catalog: NodeCatalog, subgraphs: dict[str, SubgraphDefinition],
            limit: int) -> dict[str, Instance]:
    """Every node instance by its execution id, subgraph instances included; raises
    TooManyInstances past `limit`, before expanding any further."""
    found: dict[str, Instance] = {}

    def visit(graph: UiGraph, path: tuple[int, ...], parent: Instance | None,
              open_subgraphs: tuple[str, ...]) -> None:
        for node in graph.nodes.values():
            instance = _instance(node, graph, path, parent, catalog, subgraphs)
            found[instance.exec_id] = instance
            if len(found) > limit:
                raise TooManyInstances(limit)
            if instance.subgraph is not None:
                if instance.subgraph.id in open_subgraphs:
                    raise SubgraphCycle(instance.exec_id)
                visit(instance.subgraph.graph, (*path, node.id), instance,
                      (*open_subgraphs, instance.subgraph.id))

    visit(graph, (), None, ())
    return found
