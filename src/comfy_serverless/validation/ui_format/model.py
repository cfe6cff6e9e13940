"""The UI-format file (what ComfyUI's editor saves), read into typed records.

Both link spellings are read: schema 0.4's arrays `[id, origin_id, origin_slot, target_id,
target_slot, type]` and schema 1's objects. Subgraph definitions (`definitions.subgraphs`)
become graphs of their own, with their input and output slots; inside one, a link from
node -10 comes from the subgraph's inputs and a link to node -20 goes to its outputs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["SUBGRAPH_INPUT_ID", "SUBGRAPH_OUTPUT_ID", "SubgraphDefinition", "UiGraph",
           "UiInput", "UiLink", "UiNode", "UiOutput", "is_ui_format", "link_entries",
           "node_entries", "read_node", "read_ui_file", "subgraph_count"]

SUBGRAPH_INPUT_ID = -10
SUBGRAPH_OUTPUT_ID = -20


def is_ui_format(raw: Any) -> bool:
    """A UI-format file: `nodes` as a list, with `links` beside it."""
    return isinstance(raw, Mapping) and isinstance(raw.get("nodes"), list) and "links" in raw


@dataclass(frozen=True)
class UiLink:
    id: int
    origin_id: int
    origin_slot: int
    target_id: int
    target_slot: int
    type: Any


@dataclass(frozen=True)
class UiInput:
    name: str
    type: Any
    link: int | None
    label: str | None = None
    widget: str | None = None  # the widget this socket stands for, if any


@dataclass(frozen=True)
class UiOutput:
    name: str
    type: Any
    links: tuple[int, ...] = ()


@dataclass(frozen=True)
class UiNode:
    id: int
    type: str
    mode: int
    title: str | None
    inputs: tuple[UiInput, ...]
    outputs: tuple[UiOutput, ...]
    widgets_values: list[Any] | dict[str, Any] | None

    def label(self) -> str:
        return f"UI node {self.id} ({self.title or self.type})"


@dataclass(frozen=True)
class UiGraph:
    nodes: Mapping[int, UiNode]
    links: Mapping[int, UiLink]


@dataclass(frozen=True)
class SubgraphDefinition:
    id: str
    name: str
    graph: UiGraph
    inputs: tuple[UiOutput, ...]
    outputs: tuple[UiOutput, ...]


def _int(value: Any, default: int = -1) -> int:
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: Infinity
        return default


def _link(raw: Any) -> UiLink | None:
    if isinstance(raw, list) and len(raw) >= 5:
        link_id, origin_id, origin_slot, target_id, target_slot = (_int(v) for v in raw[:5])
        return UiLink(link_id, origin_id, origin_slot, target_id, target_slot,
                      raw[5] if len(raw) > 5 else "*")
    if isinstance(raw, Mapping):
        return UiLink(_int(raw.get("id")), _int(raw.get("origin_id")),
                      _int(raw.get("origin_slot")), _int(raw.get("target_id")),
                      _int(raw.get("target_slot")), raw.get("type", "*"))
    return None


def _ints(raw: Any) -> tuple[int, ...]:
    return tuple(_int(value) for value in raw) if isinstance(raw, list) else ()


def _slots(raw: Any) -> list[Mapping[str, Any]]:
    return [slot for slot in raw if isinstance(slot, Mapping)] if isinstance(raw, list) else []


def _input(raw: Mapping[str, Any]) -> UiInput:
    label, widget = raw.get("label"), raw.get("widget")
    widget_name = widget.get("name") if isinstance(widget, Mapping) else None
    return UiInput(str(raw.get("name", "")), raw.get("type", "*"),
                   None if raw.get("link") is None else _int(raw.get("link")),
                   label if isinstance(label, str) else None,
                   widget_name if isinstance(widget_name, str) else None)


def read_node(raw: Mapping[str, Any]) -> UiNode:
    values = raw.get("widgets_values")
    title = raw.get("title")
    return UiNode(
        id=_int(raw.get("id")), type=str(raw.get("type") or ""), mode=_int(raw.get("mode"), 0),
        title=title if isinstance(title, str) else None,
        inputs=tuple(_input(slot) for slot in _slots(raw.get("inputs"))),
        outputs=tuple(UiOutput(str(s.get("name", "")), s.get("type", "*"),
                               _ints(s.get("links")))
                      for s in _slots(raw.get("outputs"))),
        widgets_values=values if isinstance(values, list | dict) else None,
    )


def _graph(raw: Mapping[str, Any]) -> UiGraph:
    nodes = {node.id: node for node in map(read_node, _slots(raw.get("nodes")))}
    found = raw.get("links")
    links = [_link(item) for item in found] if isinstance(found, list) else []
    return UiGraph(nodes, {link.id: link for link in links if link is not None})


def _io_slots(raw: Any) -> tuple[UiOutput, ...]:
    return tuple(UiOutput(str(s.get("name", "")), s.get("type", "*"),
                          _ints(s.get("linkIds")))
                 for s in _slots(raw))


def _subgraph_list(raw: Mapping[str, Any]) -> Any:
    definitions = raw.get("definitions")
    return definitions.get("subgraphs") if isinstance(definitions, Mapping) else None


def _length(value: Any) -> int:
    return len(value) if isinstance(value, list) else 0


def _graphs(raw: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    subgraphs = _subgraph_list(raw)
    return [raw, *(item for item in (subgraphs if isinstance(subgraphs, list) else ())
                   if isinstance(item, Mapping))]


def subgraph_count(raw: Mapping[str, Any]) -> int:
    """How many subgraph definitions the file holds: len() alone."""
    return _length(_subgraph_list(raw))


def node_entries(raw: Mapping[str, Any]) -> int:
    """How many nodes the root graph and the subgraph definitions hold; walks the
    definitions, not the nodes: check subgraph_count first."""
    return sum(_length(graph.get("nodes")) for graph in _graphs(raw))


def link_entries(raw: Mapping[str, Any]) -> int:
    """How many links, subgraph slots and node sockets the root graph and the subgraph
    definitions hold. Walks every node: count node_entries first."""
    return sum(_length(graph.get("links")) + _length(graph.get("inputs"))
               + _length(graph.get("outputs"))
               + sum(_length(node.get("inputs")) + _length(node.get("outputs"))
                     for node in _slots(graph.get("nodes")))
               for graph in _graphs(raw))


def read_ui_file(raw: Mapping[str, Any]) -> tuple[UiGraph, dict[str, SubgraphDefinition]]:
    """The root graph, and the subgraph definitions by id."""
    found = _subgraph_list(raw)
    subgraphs = {
        str(item.get("id")): SubgraphDefinition(
            str(item.get("id")), str(item.get("name") or ""), _graph(item),
            _io_slots(item.get("inputs")), _io_slots(item.get("outputs")))
        for item in _slots(found)}
    return _graph(raw), subgraphs
