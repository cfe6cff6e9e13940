"""What a validation found, and how it is answered: 400 (the workflow is wrong) wins over
422 (a sound workflow this fleet cannot run)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import takewhile
from typing import Any

from comfy_serverless.errors import ApiError, WorkflowInvalid, documentation_path

__all__ = [
    "MAX_FINDINGS",
    "Findings",
    "ValidationProblem",
    "WorkflowNotRunnable",
    "SUGGESTED",
    "listed",
    "nearest",
    "with_article",
    "workflow_invalid",
]

_LISTED = 10
# The most problems (and, apart, invalid connections) one answer lists; the rest are counted.
MAX_FINDINGS = 50


# Suggestion work is bounded (docs/reference/workflow-validation.md, "Suggestions"): in one
# request, at most SUGGESTED findings get a "did you mean", each compared with at most
# _COMPARED candidates of at most _SUGGESTIBLE characters, chosen by a linear prefilter.
SUGGESTED = 5
_COMPARED = 100
_SUGGESTIBLE = 200


def nearest(value: str, candidates: Iterable[str], n: int = 3, cutoff: float = 0.4
            ) -> list[str]:
    """Up to `n` candidates close to `value` (difflib), in bounded time: only candidates
    whose length could reach `cutoff`, the _COMPARED that share the longest prefix with it."""
    if len(value) > _SUGGESTIBLE:
        return []
    folded = value.casefold()
    fitting = [c for c in candidates
               if len(c) <= _SUGGESTIBLE and 2 * min(len(c), len(value)) >= cutoff * (
                   len(c) + len(value))]
    if len(fitting) > _COMPARED:
        fitting.sort(key=lambda c: -_shared_prefix(folded, c.casefold()))
        fitting = fitting[:_COMPARED]
    return difflib.get_close_matches(value, fitting, n=n, cutoff=cutoff)


def _shared_prefix(one: str, other: str) -> int:
    return sum(1 for _ in takewhile(lambda pair: pair[0] == pair[1], zip(one, other,
                                                                      strict=False)))


def listed(values: Sequence[Any]) -> str:
    """The first ten values, then how many more: 'a, b, c (and 12 more)'."""
    shown = ", ".join(str(value) for value in values[:_LISTED])
    return shown + (f" (and {len(values) - _LISTED} more)" if len(values) > _LISTED else "")


def with_article(noun: str) -> str:
    """'an Empty Latent Image', 'an INT', 'a FLOAT'."""
    return f"{'an' if noun[:1].lower() in 'aeiou' else 'a'} {noun}"


@dataclass(frozen=True)
class ValidationProblem:
    node_id: str | None
    error: str
    suggestion: str

    def as_dict(self) -> dict[str, Any]:
        return {"node_id": self.node_id, "error": self.error, "suggestion": self.suggestion}


class WorkflowNotRunnable(ApiError):
    status_code = 422
    error_code = "WORKFLOW_NOT_RUNNABLE"


@dataclass
class Findings:
    errors: list[ValidationProblem] = field(default_factory=list)
    unrunnable: list[ValidationProblem] = field(default_factory=list)
    missing_nodes: list[str] = field(default_factory=list)
    invalid_connections: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def error(self, node_id: str | None, error: str, suggestion: str) -> None:
        self.errors.append(ValidationProblem(node_id, error, suggestion))

    def cannot_run(self, node_id: str | None, error: str, suggestion: str) -> None:
        self.unrunnable.append(ValidationProblem(node_id, error, suggestion))

    def missing_node(self, class_type: str) -> None:
        if class_type not in self.missing_nodes:
            self.missing_nodes.append(class_type)

    def raise_if_any(self) -> None:
        if self.errors or self.invalid_connections:
            raise self._answer(WorkflowInvalid, self.errors, "Workflow validation failed")
        if self.unrunnable:
            raise self._answer(WorkflowNotRunnable, self.unrunnable,
                               "The workflow cannot run on this deployment")

    def _answer(self, kind: type[ApiError], problems: list[ValidationProblem],
                summary: str, *, headline: str | None = None) -> ApiError:
        """The spec's 400 body; `headline` replaces the message built from the first problem."""
        first = problems[0].error if problems else self.invalid_connections[0]["error"]
        count = len(problems) + len(self.invalid_connections)
        more = f" (and {count - 1} more)" if count > 1 else ""
        return kind(
            headline or f"{summary}: {first}{more}",
            {"validation_errors": _capped(problems),
             "missing_nodes": self.missing_nodes[:MAX_FINDINGS],
             "invalid_connections": self.invalid_connections[:MAX_FINDINGS]},
            extra={"documentation_url": documentation_path(kind.error_code)},
        )


def _capped(problems: list[ValidationProblem]) -> list[dict[str, Any]]:
    """The first MAX_FINDINGS problems, then one that counts those left out."""
    shown = [problem.as_dict() for problem in problems[:MAX_FINDINGS]]
    if len(problems) > MAX_FINDINGS:
        shown.append(ValidationProblem(
            None, f"{len(problems) - MAX_FINDINGS} more problems were left out",
            "Fix these and submit again to see the rest").as_dict())
    return shown


def workflow_invalid(problems: list[ValidationProblem], message: str | None = None
                     ) -> ApiError:
    """The 400 for problems found before the validator runs (format, overrides)."""
    headline = message or f"Workflow validation failed: {problems[0].error}"
    return Findings(errors=list(problems))._answer(
        WorkflowInvalid, problems, "Workflow validation failed", headline=headline)
