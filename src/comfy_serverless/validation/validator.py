"""The workflow validator: catches what would fail, or break ComfyUI, before it costs GPU time.

Order: size limits → node policy → (with a catalog) node classes, output nodes, reachability,
then each reachable node's inputs: presence, link types, literal values. Without a catalog (no
worker has published one yet) only the checks that need none run; ComfyUI's own validation,
mapped onto the same error shape, still guards the rest.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from comfy_serverless.loader_inputs import is_model_source
from comfy_serverless.validation.catalog import (
    InputSpec,
    NodeCatalog,
    NodeSpec,
    types_compatible,
)
from comfy_serverless.validation.files import (
    MODEL_SAVERS,
    link_problem,
    name_problems,
    names_a_file,
    object_problem,
)
from comfy_serverless.validation.findings import (
    SUGGESTED,
    Findings,
    ValidationProblem,
    listed,
    nearest,
    with_article,
    workflow_invalid,
)
from comfy_serverless.validation.model_references import MODEL_FOLDER_BY_INPUT
from comfy_serverless.validation.rules import ValidationRules
from comfy_serverless.validation.values import (
    Refused,
    coerce_literal,
    limit_problems,
    numeric_bound,
    range_problem,
)
from comfy_serverless.validation.workflow import Graph, copy_graph, is_link, size_problems

__all__ = ["ValidatedWorkflow", "WorkflowValidator"]


@dataclass(frozen=True)
class ValidatedWorkflow:
    graph: Graph
    warnings: list[str] = field(default_factory=list)
    pruned: list[str] = field(default_factory=list)


def _describe(spec: InputSpec) -> str:
    """What a literal for `spec` must be, with its article: 'an INT between 1 and 10000
    (default 20)', 'one of euler, euler_cfg_pp, … (and 30 more)'."""
    config = spec.config
    default = f" (default {config['default']!r})" if "default" in config else ""
    if spec.type == "COMBO":
        return f"one of {listed(spec.options or ())}{default}"
    bounds = ""
    if "min" in config and "max" in config:
        bounds = f" between {config['min']} and {config['max']}"
    return f"{with_article(spec.type)}{bounds}{default}"


class WorkflowValidator:
    def __init__(self, rules: ValidationRules, catalog: NodeCatalog | None) -> None:
        self.rules = rules
        self.catalog = catalog

    def validate(self, graph: Graph, problems: Iterable[ValidationProblem] = ()
                 ) -> ValidatedWorkflow:
        """Check `graph`; raise with every problem found, including `problems` already known
        (the structural ones of parse_workflow)."""
        if too_large := size_problems(graph, self.rules):
            raise workflow_invalid(too_large)
        findings = Findings(errors=list(problems))
        denied = self._check_node_lists(graph, findings)
        if self.catalog is None:
            self._check_literal_limits(graph, findings)
            findings.raise_if_any()
            return ValidatedWorkflow(graph)
        checked, pruned = _CatalogPass(self.rules, self.catalog, graph, findings, denied).run()
        findings.raise_if_any()
        return ValidatedWorkflow(checked, findings.warnings, pruned)

    def _check_node_lists(self, graph: Graph, findings: Findings) -> set[str]:
        """The deny and allow lists; returns the ids of the nodes they refuse."""
        denied, allowed = set(self.rules.node_blacklist), set(self.rules.node_whitelist)
        refused = set()
        for node_id, node in graph.items():
            class_type = node["class_type"]
            if class_type in denied or (allowed and class_type not in allowed):
                refused.add(node_id)
                findings.cannot_run(node_id, f"Node class '{class_type}' is not allowed on "
                                             "this service", "Remove it from the workflow")
            elif class_type in MODEL_SAVERS and not self.rules.allow_model_savers:
                refused.add(node_id)
                findings.error(node_id, f"Node class '{class_type}' saves a model, which this "
                                        "service does not allow",
                               "Remove it; an operator may allow model savers with "
                               "allow_model_savers")
        return refused

    @staticmethod
    def _check_link_policy(node_id: str, class_type: str, name: str, spec: InputSpec | None,
                           findings: Findings) -> bool:
        """The policies on links themselves (validation/files.py); True when one refuses."""
        if (problem := link_problem(class_type, name, spec)) is not None:
            findings.error(node_id, problem.error, problem.suggestion)
        return problem is not None

    def _check_literal_limits(self, graph: Graph, findings: Findings) -> None:
        for node_id, node in graph.items():
            for name, value in node["inputs"].items():
                if is_link(value):
                    self._check_link_policy(node_id, node["class_type"], name, None, findings)
                    continue
                bound = numeric_bound(name, self.rules)
                for limit in limit_problems(name, value, self.rules, bound):
                    findings.error(node_id, limit, "Send a value within the limits")
                for problem in name_problems(node["class_type"], name, value, None, self.rules):
                    findings.error(node_id, problem.error, problem.suggestion)
                if (named := object_problem(name, value)) is not None:
                    findings.error(node_id, named.error, named.suggestion)


class _CatalogPass:
    """One validation of one graph against the catalog; builds the normalised graph."""

    def __init__(self, rules: ValidationRules, catalog: NodeCatalog, graph: Graph,
                 findings: Findings, refused: set[str]) -> None:
        self.rules = rules
        self.catalog = catalog
        self.graph = copy_graph(graph)
        self.findings = findings
        self.refused = refused
        self.specs = {node_id: catalog.get(node["class_type"])
                      for node_id, node in self.graph.items()}
        self.suggested = 0  # wrong choices given a "Nearest" so far (at most SUGGESTED)

    def run(self) -> tuple[Graph, list[str]]:
        self._check_classes()
        outputs = [node_id for node_id, spec in self.specs.items() if spec and spec.output_node]
        unknown = [node_id for node_id, spec in self.specs.items() if spec is None]
        if not outputs and not unknown:
            self.findings.error(None, "The workflow has no output node",
                                "Add an output node such as SaveImage or PreviewImage")
            reachable = set(self.graph)
        else:
            reachable = self._upstream_of(outputs + unknown)
        pruned = [node_id for node_id in self.graph if node_id not in reachable]
        for node_id in pruned:
            self.findings.warnings.append(
                f"Node '{node_id}' ({self.graph[node_id]['class_type']}) leads to no output "
                "node; it was not sent to ComfyUI")
        for node_id in reachable:
            self._check_node(node_id)
        return {node_id: self.graph[node_id] for node_id in self.graph
                if node_id in reachable}, pruned

    def _check_classes(self) -> None:
        for node_id, spec in self.specs.items():
            class_type = self.graph[node_id]["class_type"]
            if node_id in self.refused:
                continue
            if spec is None:
                similar = self.catalog.similar(class_type)
                hint = (f"Did you mean {' or '.join(similar)}?" if similar else
                        "Install the node pack that provides it on the workers")
                self.findings.cannot_run(node_id, f"Node class '{class_type}' is not "
                                                  "available on any worker", hint)
                self.findings.missing_node(class_type)
            elif not spec.is_core and (refused := self._refused_packs(spec)):
                self.findings.cannot_run(
                    node_id, f"Node class '{class_type}' comes from the unverified node pack "
                             f"'{refused[0] or spec.python_module}'",
                    "Use core nodes or a verified node pack")

    def _refused_packs(self, spec: NodeSpec) -> list[str | None]:
        """The packs the class comes from (on any worker: per class, not per pack name)
        that this service does not allow; empty when every copy is allowed."""
        if not self.rules.custom_nodes_enabled:
            return sorted(spec.node_packs, key=str)
        if not self.rules.custom_nodes_require_verification:
            return []
        return sorted((pack for pack in spec.node_packs
                       if pack not in self.rules.verified_node_packs), key=str)

    def _upstream_of(self, roots: list[str]) -> set[str]:
        seen: set[str] = set()
        pending = list(roots)
        while pending:
            node_id = pending.pop()
            if node_id in seen or node_id not in self.graph:
                continue
            seen.add(node_id)
            pending.extend(str(value[0]) for value in self.graph[node_id]["inputs"].values()
                           if is_link(value))
        return seen

    def _check_node(self, node_id: str) -> None:
        spec = self.specs[node_id]
        inputs: dict[str, Any] = self.graph[node_id]["inputs"]
        if spec is None:
            return
        for name, input_spec in spec.inputs.items():
            if name not in inputs:
                if input_spec.required:
                    self._missing_input(node_id, input_spec)
            elif is_link(inputs[name]):
                if not WorkflowValidator._check_link_policy(
                        node_id, spec.class_type, name, input_spec, self.findings):
                    self._check_link(node_id, input_spec, inputs[name])
            else:
                self._check_literal(node_id, spec.class_type, input_spec, inputs)
        for name, value in inputs.items():
            if name not in spec.inputs and not is_link(value):
                self._check_limits(node_id, name, value, None)

    def _missing_input(self, node_id: str, spec: InputSpec) -> None:
        if spec.takes_literal:
            self.findings.error(node_id, f"Missing required input '{spec.name}'",
                                f"Set '{spec.name}' to {_describe(spec)}")
            return
        producers = self.catalog.producers(spec.type)
        if producers:
            best, others = producers[0], [p.class_type for p in producers[1:4]]
            self.findings.missing_node(best.class_type)
            hint = (f"Connect {with_article(best.display_name)} node ({best.class_type}) to input "
                    f"'{spec.name}'")
            if others:
                hint += f"; other nodes that output {spec.type}: {', '.join(others)}"
        else:
            hint = f"Connect a node that outputs {spec.type} to input '{spec.name}'"
        self.findings.error(node_id, f"Missing required input connection '{spec.name}'", hint)

    def _check_link(self, node_id: str, spec: InputSpec, link: list[Any]) -> None:
        source_id, index = str(link[0]), link[1]
        source = self.specs.get(source_id)
        if source is None:
            return
        if not 0 <= index < len(source.outputs):
            self.findings.error(
                node_id, f"Input '{spec.name}' links to output {index} of node '{source_id}' "
                         f"({source.class_type}), which has {len(source.outputs)} output(s)",
                f"Use an output index from 0 to {len(source.outputs) - 1}")
            return
        received = source.outputs[index]
        if not types_match(received, spec):
            expected = spec.type if not spec.legacy_combo else "a choice of values"
            self.findings.invalid_connections.append({
                "from_node": source_id, "from_socket": str(received), "to_node": node_id,
                "to_socket": spec.name,
                "error": f"Type mismatch: {received} cannot connect to {expected}",
            })

    def _check_literal(self, node_id: str, class_type: str, spec: InputSpec,
                       inputs: dict[str, Any]) -> None:
        value = inputs[spec.name]
        if (named := object_problem(spec.name, value)) is not None:
            self.findings.error(node_id, named.error, named.suggestion)
            return
        if not spec.takes_literal:
            self.findings.error(node_id, f"Input '{spec.name}' needs a connection from a node "
                                         f"that outputs {spec.type}, not a value",
                                f"Link '{spec.name}' as [node_id, output_index]")
            return
        try:
            value = inputs[spec.name] = coerce_literal(spec, value)
        except Refused as refused:
            self.findings.error(node_id, f"Invalid value for '{spec.name}': {refused}",
                                f"Set '{spec.name}' to {_describe(spec)}")
            return
        if not self._check_limits(node_id, spec.name, value, spec):
            return
        if self._check_names(node_id, class_type, spec, value):
            return  # a loader's options are its published files, checked there
        if names_a_model_source(spec, value):
            return  # the file it will become; submit checks it (executions/model_requests.py)
        if problem := range_problem(spec, value):
            self.findings.error(node_id, problem, f"Set '{spec.name}' to {_describe(spec)}")
        elif spec.type == "COMBO" and value not in (spec.options or ()):
            self._not_an_option(node_id, spec, value)

    def _check_names(self, node_id: str, class_type: str, spec: InputSpec, value: Any) -> bool:
        """The file-name policy (validation/files.py); True when the input is a loader's."""
        for problem in name_problems(class_type, spec.name, value, spec, self.rules):
            self.findings.error(node_id, problem.error, problem.suggestion)
        return names_a_file(class_type, spec.name, spec)

    def _check_limits(self, node_id: str, name: str, value: Any, spec: InputSpec | None
                      ) -> bool:
        problems = limit_problems(name, value, self.rules, numeric_bound(name, self.rules))
        for problem in problems:
            self.findings.error(node_id, problem, "Send a value within the service's limits")
        return not problems

    def _not_an_option(self, node_id: str, spec: InputSpec, value: Any) -> None:
        close: list[str] = []
        if self.suggested < SUGGESTED:
            self.suggested += 1
            close = nearest(str(value), [str(option) for option in spec.options or ()])
        hint = (f"Nearest: {', '.join(close)}" if close else
                f"Choose one of {listed(spec.options or ())}")
        if spec.lists_model_files:
            self.findings.cannot_run(node_id, f"Model '{value}' for '{spec.name}' is not on "
                                              "any worker", hint)
        else:
            self.findings.error(node_id, f"Value '{value}' is not a valid choice for "
                                         f"'{spec.name}'", hint)


def names_a_model_source(spec: InputSpec, value: Any) -> bool:
    """A model loader's combo given a model source: the worker fetches it into the input's
    model folder, so it stands for a file not yet in the options."""
    return (spec.type == "COMBO" and spec.name in MODEL_FOLDER_BY_INPUT
            and is_model_source(value))


def types_match(received: Any, spec: InputSpec) -> bool:
    return types_compatible(received, spec.link_type)

