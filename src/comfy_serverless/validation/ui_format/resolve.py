"""Where each input's value comes from, traced as the editor traces it at queue time.

An input resolves to an output `[id, slot]` of a backend node, to a value (a subgraph
widget), or to nothing (left unlinked, so the node's own widget value stands):
- through a Reroute, to whatever feeds the reroute;
- through a bypassed node (mode 4), to the input that the output passes on: the input at
  the same slot if its type fits, else the first input of exactly the type, else the first
  that fits;
- into a subgraph instance's output, to the inner node that feeds it; out of a subgraph's
  input, to what feeds the instance, or the instance's widget for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from comfy_serverless.validation.ui_format.flatten import Instance, Kind, execution_id
from comfy_serverless.validation.ui_format.model import SUBGRAPH_INPUT_ID

__all__ = ["LinkProblem", "Origin", "Resolver", "WidgetValue", "types_connect"]

BYPASS = 4


@dataclass(frozen=True)
class Origin:
    exec_id: str
    slot: int


@dataclass(frozen=True)
class WidgetValue:
    value: Any


class LinkProblem(Exception):
    """A link that points nowhere, or a loop of links; names the instance it was found at."""

    def __init__(self, instance: Instance, message: str) -> None:
        super().__init__(message)
        self.instance = instance


def types_connect(first: Any, second: Any) -> bool:
    """The editor's connection rule: `*` or empty fits all; else equal (ignoring case), or
    comma-separated unions that share a member."""
    if first in ("", "*", None, 0) or second in ("", "*", None, 0) or first == second:
        return True
    left = {part.strip() for part in str(first).lower().split(",")}
    right = {part.strip() for part in str(second).lower().split(",")}
    return bool(left & right) or "*" in left or "*" in right


Resolved = Origin | WidgetValue | None


class Resolver:
    def __init__(self, instances: dict[str, Instance]) -> None:
        self.instances = instances

    def _member(self, instance: Instance, node_id: int) -> Instance:
        found = self.instances.get(execution_id(instance.path, node_id))
        if found is None:
            raise LinkProblem(instance, f"a link comes from node {node_id}, which does not exist")
        return found

    def _guard(self, instance: Instance, key: str, visited: set[str]) -> None:
        unique = f"{instance.exec_id}{key}"
        if unique in visited:
            raise LinkProblem(instance, "its links form a loop")
        visited.add(unique)

    def resolve_input(self, instance: Instance, slot: int, visited: set[str] | None = None,
                      wanted: Any = None) -> Resolved:
        visited = set() if visited is None else visited
        self._guard(instance, f"[I]{slot}", visited)
        if instance.group_of is not None:
            return self._group_member_input(instance, instance.group_of, slot)
        live = instance.inputs[slot]
        if live.link is None:
            return None
        link = instance.graph.links.get(live.link)
        if link is None:
            raise LinkProblem(instance, f"input '{live.name}' uses link {live.link}, which "
                                        "does not exist")
        parent = instance.parent
        if parent is not None and link.origin_id == SUBGRAPH_INPUT_ID:
            return self._from_subgraph_input(parent, link.origin_slot, visited)
        origin = self._member(instance, link.origin_id)
        return self.resolve_output(origin, link.origin_slot, wanted or live.type, visited)

    def _from_subgraph_input(self, parent: Instance, slot: int, visited: set[str]
                             ) -> Resolved:
        if not 0 <= slot < len(parent.inputs):
            raise LinkProblem(parent, f"its subgraph has no input {slot}")
        if parent.inputs[slot].link is None:
            return self.promoted_widget(parent, parent.inputs[slot].name)
        return self.resolve_input(parent, slot, visited)

    def resolve_output(self, instance: Instance, slot: int, wanted: Any, visited: set[str]
                       ) -> Resolved:
        self._guard(instance, f"[O]{slot}", visited)
        if instance.node.mode == BYPASS:
            index = self._bypass_slot(instance, slot, wanted)
            return None if index < 0 else self.resolve_input(instance, index, visited)
        if instance.kind is Kind.SUBGRAPH:
            return self._from_subgraph_output(instance, slot, wanted, visited)
        if instance.kind is Kind.GROUP:
            return self._group_output(instance, slot)
        if instance.kind is Kind.VIRTUAL:
            has_input = slot < len(instance.inputs) and instance.inputs[slot].link is not None
            return self.resolve_input(instance, slot, visited, wanted) if has_input else None
        return Origin(instance.exec_id, slot)

    def _from_subgraph_output(self, instance: Instance, slot: int, wanted: Any,
                              visited: set[str]) -> Resolved:
        assert instance.subgraph is not None
        outputs = instance.subgraph.outputs
        if not 0 <= slot < len(outputs):
            raise LinkProblem(instance, f"its subgraph has no output {slot}")
        link = instance.subgraph.graph.links.get(outputs[slot].links[0]) if outputs[
            slot].links else None
        if link is None:
            return None
        inner = self.instances.get(f"{instance.exec_id}:{link.origin_id}")
        if inner is None:
            raise LinkProblem(instance, f"its subgraph output {slot} comes from node "
                                        f"{link.origin_id}, which does not exist")
        return self.resolve_output(inner, link.origin_slot, wanted, visited)

    def _group_member_input(self, member: Instance, group_node: Instance, slot: int
                            ) -> Resolved:
        """A group member's input: from another member, or, through the group node's input,
        straight from the node that feeds it (the editor follows no reroute there)."""
        assert group_node.group is not None
        group = group_node.group
        external = group.external_inputs.get((member.member_index, slot))
        if external is not None:
            link_id = group_node.inputs[external].link if external < len(
                group_node.inputs) else None
            link = None if link_id is None else group_node.graph.links.get(link_id)
            if link is None:
                return None
            return Origin(execution_id(group_node.path, link.origin_id), link.origin_slot)
        origin = group.links_to.get((member.member_index, slot))
        if origin is None or group.members[origin[0]].type == "PrimitiveNode":
            return None
        return Origin(f"{group_node.exec_id}:{origin[0]}", origin[1])

    def _group_output(self, group_node: Instance, slot: int) -> Resolved:
        assert group_node.group is not None
        if not 0 <= slot < len(group_node.group.outputs):
            raise LinkProblem(group_node, f"its group has no output {slot}")
        index, inner_slot = group_node.group.outputs[slot]
        return Origin(f"{group_node.exec_id}:{index}", inner_slot)

    def _bypass_slot(self, instance: Instance, slot: int, wanted: Any) -> int:
        inputs = instance.inputs
        if instance.kind is Kind.GROUP:  # the editor's group nodes take an exact type only
            return next((i for i in (slot, *range(len(inputs)))
                         if i < len(inputs) and inputs[i].type == wanted), -1)
        if wanted in ("*", ""):
            return slot if len(inputs) > slot else 0
        output_type = instance.output_types[slot] if slot < len(instance.output_types) else "*"

        def fits(kind: Any) -> bool:
            return types_connect(kind, output_type) and types_connect(kind, wanted)

        if slot < len(inputs) and fits(inputs[slot].type):
            return slot
        exact = [i for i, live in enumerate(inputs) if live.type == wanted]
        if exact:
            return exact[0]
        return next((i for i, live in enumerate(inputs) if fits(live.type)), -1)

    def promoted_widget(self, instance: Instance, name: str) -> WidgetValue | None:
        """The value of a subgraph instance's widget for its input `name`, if it has one."""
        promoted = self._promoted(instance)
        names = [input_name for input_name, _ in promoted]
        if name not in names:
            return None
        index = names.index(name)
        stored = instance.node.widgets_values
        if isinstance(stored, list) and index < len(stored):
            return WidgetValue(stored[index])
        return WidgetValue(promoted[index][1])

    def _promoted(self, instance: Instance) -> list[tuple[str, Any]]:
        """The instance's widgets: one per subgraph input whose first link into a widget
        input is found, with that widget's value as its default."""
        assert instance.subgraph is not None
        found = []
        for slot in instance.subgraph.inputs:
            for link_id in slot.links:
                value = self._inner_widget(instance, link_id)
                if value is not None:
                    found.append((slot.name, value.value))
                    break
        return found

    def _inner_widget(self, instance: Instance, link_id: int) -> WidgetValue | None:
        assert instance.subgraph is not None
        link = instance.subgraph.graph.links.get(link_id)
        inner = None if link is None else self.instances.get(
            f"{instance.exec_id}:{link.target_id}")
        if inner is None:
            return None
        target = next((i for i in inner.inputs if i.link == link_id), None)
        if target is None:
            return None
        if inner.kind is Kind.SUBGRAPH:
            return self.promoted_widget(inner, target.name)
        sent = {w.name for w in inner.widgets if w.sent}
        return WidgetValue(inner.values[target.name]) if target.name in sent else None
