"""A submitted `workflow` made ready to queue: read (converted first when it is in the UI
format), `input_overrides` applied, then validated. Execute and convert share it."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from comfy_serverless.errors import ApiError
from comfy_serverless.validation.catalog import NodeCatalog
from comfy_serverless.validation.findings import WorkflowNotRunnable
from comfy_serverless.validation.overrides import overlay_overrides
from comfy_serverless.validation.rules import ValidationRules
from comfy_serverless.validation.ui_format import (
    Conversion,
    UiNodeRef,
    convert_ui_workflow,
    is_ui_format,
)
from comfy_serverless.validation.validator import WorkflowValidator
from comfy_serverless.validation.workflow import Graph, ParsedWorkflow, parse_workflow

__all__ = ["PreparedWorkflow", "prepare_workflow"]


@dataclass(frozen=True)
class PreparedWorkflow:
    graph: Graph
    metadata: dict[str, Any]
    warnings: list[str] = field(default_factory=list)
    converted: bool = False


def _read(raw: dict[str, Any], catalog: NodeCatalog | None, rules: ValidationRules
          ) -> tuple[ParsedWorkflow, Conversion | None]:
    if not is_ui_format(raw):
        return parse_workflow(raw, rules), None
    if catalog is None:
        raise WorkflowNotRunnable(
            "A UI-format workflow is converted with the node catalog, and no worker has "
            "published one yet", {"format": "ui"})
    conversion = convert_ui_workflow(raw, catalog, max_nodes=rules.max_nodes)
    parsed = parse_workflow(conversion.graph, rules)
    return ParsedWorkflow(parsed.graph, {}, [*conversion.problems, *parsed.problems]), conversion


@contextmanager
def _pointing_back(sources: Mapping[str, UiNodeRef]) -> Iterator[None]:
    """Findings on a converted workflow also name the UI node id and title of their node."""
    try:
        yield
    except ApiError as error:
        for problem in error.details.get("validation_errors", ()):
            if (ref := sources.get(str(problem.get("node_id")))) is not None:
                problem.update(ui_node_id=ref.ui_id, ui_title=ref.title)
        raise


def prepare_workflow(raw: dict[str, Any], overrides: dict[str, Any], rules: ValidationRules,
                     catalog: NodeCatalog | None) -> PreparedWorkflow:
    parsed, conversion = _read(raw, catalog, rules)
    sources = conversion.sources if conversion else {}
    overridden, override_problems = overlay_overrides(
        parsed.graph, overrides, catalog, max_keys=rules.max_input_overrides)
    with _pointing_back(sources):
        validated = WorkflowValidator(rules, catalog).validate(
            overridden, [*parsed.problems, *override_problems])
    converted_warnings = conversion.warnings if conversion else []
    return PreparedWorkflow(validated.graph, parsed.metadata,
                            [*converted_warnings, *validated.warnings], conversion is not None)
