"""Legacy group nodes (`extra.groupNodes`, instances typed `workflow>Name`), laid out as the
editor's group-node extension lays them out.

A group's definition keeps its member nodes, the links between them (by member index) and
the outputs used outside. The editor turns it into a node class of its own: its inputs are
the members' unlinked inputs (sockets first, in member order, then widgets), named after
the member input, prefixed with the member's title where a name repeats; its outputs are
the members' outputs that no member uses, or that are used outside. An instance's widget
values go to the members' widgets; its members run as `<instance id>:<member index>`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from comfy_serverless.validation.catalog import InputSpec, NodeCatalog, NodeSpec
from comfy_serverless.validation.ui_format.model import UiNode, read_node
from comfy_serverless.validation.ui_format.widgets import WIDGET_TYPES

__all__ = ["GROUP_PREFIXES", "GroupDefinition", "GroupDefinitions", "MalformedGroup",
           "UnsupportedGroup", "group_count", "group_link_entries", "group_member_entries",
           "read_groups"]

GROUP_PREFIXES = ("workflow>", "workflow/")


class MalformedGroup(Exception):
    """A group definition the editor could not have written (a link or `external` entry
    that is not member indices and slots); the message says what, after the group name."""


class UnsupportedGroup(MalformedGroup):
    """A group node whose members are not all backend nodes (reroutes, primitives, unknown
    classes inside a group are not converted)."""


@dataclass
class GroupDefinition:
    name: str
    members: list[UiNode]
    member_specs: list[NodeSpec]
    links_to: dict[tuple[int, int], tuple[int, int]]  # (member, slot) ← (member, slot)
    spec: NodeSpec | None = None  # the class the editor makes of the group
    external_inputs: dict[tuple[int, int], int] = field(default_factory=dict)
    widget_targets: dict[str, tuple[int, str]] = field(default_factory=dict)
    outputs: list[tuple[int, int]] = field(default_factory=list)


def _slot(name: str, what: str, raw: list[Any], members: int) -> tuple[int, int]:
    """`[member index, slot]`, both whole numbers, the index naming a member."""
    index, slot = raw
    if (not all(isinstance(v, int) and not isinstance(v, bool) for v in (index, slot))
            or not 0 <= index < members or slot < 0):
        raise MalformedGroup(f"'{name}': {what} {_shown(raw)} is not a member index and "
                             f"slot (the group has {members} members)")
    return index, slot


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:37]}..."


def _links(name: str, raw: Any, members: int
           ) -> tuple[dict[tuple[int, int], tuple[int, int]], set[tuple[int, int]]]:
    links_to, linked_from = {}, set()
    for link in raw if isinstance(raw, list) else []:
        if isinstance(link, list) and len(link) >= 4 and link[0] is not None:
            origin = _slot(name, "a link's origin", link[0:2], members)
            target = _slot(name, "a link's target", link[2:4], members)
            links_to[target] = origin
            linked_from.add(origin)
    return links_to, linked_from


class _Builder:
    """GroupNodeConfig.registerType, step by step."""

    def __init__(self, group: GroupDefinition, external: set[tuple[int, int]],
                 linked_from: set[tuple[int, int]]) -> None:
        self.group = group
        self.external = external
        self.linked_from = linked_from
        self.inputs: dict[str, InputSpec] = {}
        self.seen: dict[str, int] = {}
        self.count = 0

    def input_name(self, member: UiNode, input_name: str, config: Mapping[str, Any]
                   ) -> tuple[str, dict[str, Any]]:
        label = next((i.label for i in member.inputs if i.name == input_name and i.label),
                     None)
        name = key = label or input_name
        prefix = ""
        if name in self.seen:
            prefix = f"{member.title or member.type} "
            name = key = f"{prefix}{input_name}"
            if name in self.seen:
                name = f"{prefix}{self.seen[name]} {input_name}"
        self.seen[key] = self.seen.get(key, 1) + 1
        extra = dict(config)
        if input_name in ("seed", "noise_seed"):
            extra["control_after_generate"] = f"{prefix}control_after_generate"
        return name, extra

    def add(self, index: int, slot: int, spec: InputSpec, *, widget: bool) -> None:
        member = self.group.members[index]
        if (index, slot) in self.group.links_to:
            return
        name, config = self.input_name(member, spec.name, spec.config)
        self.inputs[name] = replace(spec, name=name, required=True, config=config)
        if widget:
            self.group.widget_targets[name] = (index, spec.name)
        self.group.external_inputs[(index, slot)] = self.count
        self.count += 1

    def build(self) -> None:
        later = []
        for index, spec in enumerate(self.group.member_specs):
            slots = [s for s in spec.inputs.values() if s.type not in WIDGET_TYPES]
            for slot, input_spec in enumerate(slots):
                self.add(index, slot, input_spec, widget=False)
            widgets = [s for s in spec.inputs.values() if s.type in WIDGET_TYPES]
            later += [(index, len(slots) + i, s) for i, s in enumerate(widgets)]
            self._outputs(index, spec)
        for index, slot, input_spec in later:
            self.add(index, slot, input_spec, widget=True)

    def _outputs(self, index: int, spec: NodeSpec) -> None:
        for slot in range(len(spec.outputs)):
            used_inside = (index, slot) in self.linked_from
            if not used_inside or (index, slot) in self.external:
                self.group.outputs.append((index, slot))


def _definition(name: str, raw: Mapping[str, Any], catalog: NodeCatalog) -> GroupDefinition:
    members = [read_node(item) for item in _members(raw.get("nodes"))]
    specs = [catalog.get(member.type) for member in members]
    if any(spec is None for spec in specs):
        raise UnsupportedGroup(f"'{name}' holds reroutes, primitives or classes that no "
                               "worker has, which are not converted inside group nodes")
    links_to, linked_from = _links(name, raw.get("links"), len(members))
    found = raw.get("external")
    external = {_slot(name, "an external output", e[0:2], len(members))
                for e in found if isinstance(e, list) and len(e) >= 2
                } if isinstance(found, list) else set()
    group = GroupDefinition(name, members, [s for s in specs if s is not None], links_to)
    builder = _Builder(group, external, linked_from)
    builder.build()
    outputs = tuple(group.member_specs[i].outputs[o] for i, o in group.outputs)
    group.spec = NodeSpec(f"workflow>{name}", name, f"custom_nodes.{name}", False, outputs,
                          builder.inputs)
    return group


def _found(raw: Mapping[str, Any]) -> Mapping[str, Any]:
    extra = raw.get("extra")
    found = extra.get("groupNodes") if isinstance(extra, Mapping) else None
    return found if isinstance(found, Mapping) else {}


def _length(value: Any) -> int:
    return len(value) if isinstance(value, list) else 0


def _definitions(raw: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [d for d in _found(raw).values() if isinstance(d, Mapping)]


def group_count(raw: Mapping[str, Any]) -> int:
    """How many group definitions the file holds: len() alone."""
    return len(_found(raw))


def group_member_entries(raw: Mapping[str, Any]) -> int:
    """How many members the group definitions hold; walks the definitions, not the
    members: check group_count first."""
    return sum(_length(d.get("nodes")) for d in _definitions(raw))


def group_link_entries(raw: Mapping[str, Any]) -> int:
    """How many links, `external` entries and member sockets the group definitions hold;
    walks every member: check group_member_entries first."""
    return sum(_length(d.get("links")) + _length(d.get("external"))
               + sum(_length(m.get("inputs")) + _length(m.get("outputs"))
                     for m in _members(d.get("nodes")))
               for d in _definitions(raw))


def _members(raw: Any) -> list[Mapping[str, Any]]:
    return [m for m in raw if isinstance(m, Mapping)] if isinstance(raw, list) else []


class GroupDefinitions:
    """The file's group definitions by the class name of their instances, each built the
    first time an instance asks for it: a group no node uses is never read."""

    def __init__(self, raw: Mapping[str, Any], catalog: NodeCatalog) -> None:
        self.catalog = catalog
        self.raw = {f"{prefix}{name}": (str(name), definition)
                    for name, definition in _found(raw).items()
                    if isinstance(definition, Mapping) for prefix in GROUP_PREFIXES}
        self.built: dict[str, GroupDefinition] = {}

    def get(self, class_type: str) -> GroupDefinition | None:
        """The group instances of `class_type` stand for; raises MalformedGroup."""
        if class_type not in self.raw:
            return None
        name, definition = self.raw[class_type]
        if name not in self.built:
            self.built[name] = _definition(name, definition, self.catalog)
        return self.built[name]


def read_groups(raw: Mapping[str, Any], catalog: NodeCatalog) -> GroupDefinitions:
    """The file's group definitions, built as instances use them."""
    return GroupDefinitions(raw, catalog)
