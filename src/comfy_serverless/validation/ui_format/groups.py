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

__all__ = ["GROUP_PREFIXES", "GroupDefinition", "UnsupportedGroup", "read_groups"]

GROUP_PREFIXES = ("workflow>", "workflow/")


class UnsupportedGroup(Exception):
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


def _links(raw: Any) -> tuple[dict[tuple[int, int], tuple[int, int]], set[tuple[int, int]]]:
    links_to, linked_from = {}, set()
    for link in raw if isinstance(raw, list) else []:
        if isinstance(link, list) and len(link) >= 4 and link[0] is not None:
            origin, target = (int(link[0]), int(link[1])), (int(link[2]), int(link[3]))
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
    members = [read_node(item) for item in raw.get("nodes") or [] if isinstance(item, Mapping)]
    specs = [catalog.get(member.type) for member in members]
    if any(spec is None for spec in specs):
        raise UnsupportedGroup(name)
    links_to, linked_from = _links(raw.get("links"))
    external = {(int(e[0]), int(e[1])) for e in raw.get("external") or []
                if isinstance(e, list) and len(e) >= 2}
    group = GroupDefinition(name, members, [s for s in specs if s is not None], links_to)
    builder = _Builder(group, external, linked_from)
    builder.build()
    outputs = tuple(group.member_specs[i].outputs[o] for i, o in group.outputs)
    group.spec = NodeSpec(f"workflow>{name}", name, f"custom_nodes.{name}", False, outputs,
                          builder.inputs)
    return group


def read_groups(raw: Mapping[str, Any], catalog: NodeCatalog) -> dict[str, GroupDefinition]:
    """The file's group definitions, by the class name of their instances."""
    extra = raw.get("extra")
    found = extra.get("groupNodes") if isinstance(extra, Mapping) else None
    if not isinstance(found, Mapping):
        return {}
    groups = {}
    for name, definition in found.items():
        if isinstance(definition, Mapping):
            group = _definition(str(name), definition, catalog)
            for prefix in GROUP_PREFIXES:
                groups[f"{prefix}{name}"] = group
    return groups
