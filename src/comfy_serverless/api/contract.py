"""What the OpenAPI document and a 405 say about the routes, derived from the routes themselves.

- Every route declares the error statuses it can answer with, each with the spec's error body
  (schemas.ErrorBody): 400, 500 and 503 everywhere (a bad parameter or Host header, a bug,
  the store away); 401 and 429 where a key is needed, 403 where a secret or admin key is;
  404 where the path names a resource; 408 and 413 where there is a body; plus what a route
  declares itself (e.g. execute's 409 and 422). FastAPI's own "422 Validation Error" is
  dropped: this service answers a malformed request with a 400.
- A 405's `Allow` lists every method the path answers, whichever route serves each.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute, Match, Route
from starlette.types import Scope

from comfy_serverless.api.deps import DEPENDENCY_ERRORS
from comfy_serverless.api.schemas import error_responses

__all__ = [
    "allowed_methods",
    "declare_error_answers",
    "dependency_calls",
    "errors_as_json",
    "flat_routes",
]

_EVERYWHERE = (400, 500, 503)
_WITH_BODY = (408, 413)
_ERROR_BODY = "#/components/schemas/ErrorBody"


def flat_routes(routes: Sequence[BaseRoute]) -> Iterator[BaseRoute]:
    """The app's routes in matching order, with each included router's routes in its place
    (FastAPI keeps an included router whole, as one route that holds the original)."""
    for route in routes:
        included = getattr(route, "original_router", None)
        if included is not None:
            yield from flat_routes(included.routes)
        else:
            yield route


def dependency_calls(dependant: Dependant) -> set[object]:
    """Every callable a route depends on, directly or through other dependencies."""
    calls: set[object] = set()
    pending = list(dependant.dependencies)
    while pending:
        dependency = pending.pop()
        calls.add(dependency.call)
        pending.extend(dependency.dependencies)
    return calls


def _error_statuses(route: APIRoute) -> set[int]:
    statuses = set(_EVERYWHERE)
    for call in dependency_calls(route.dependant):
        statuses.update(DEPENDENCY_ERRORS.get(call, ()))
    if route.dependant.path_params:
        statuses.add(404)
    if route.body_field is not None:
        statuses.update(_WITH_BODY)
    return statuses


def declare_error_answers(app: FastAPI) -> None:
    """Declare each route's error answers (the document itself: api/openapi.py)."""
    for route in flat_routes(app.routes):
        if isinstance(route, APIRoute):
            missing = _error_statuses(route) - set(route.responses)
            route.responses.update(error_responses(*sorted(missing)))


def errors_as_json(answers: dict[str, Any]) -> None:
    """Drop FastAPI's default 422 (this service answers a malformed request with a 400);
    every error answer is JSON in the spec's error shape, whatever media type the route's
    success answer has (text, HTML). A route that answers an error status with a body of
    its own (readyz's 503) keeps it, as one of the two shapes."""
    if answers.get("422", {}).get("description") == "Validation Error":
        del answers["422"]
    for status, answer in answers.items():
        if status.isdigit() and int(status) >= 400:
            own = answer.get("content", {}).get("application/json", {}).get("schema")
            schema: dict[str, Any] = {"$ref": _ERROR_BODY}
            if own and own != schema:
                schema = {"anyOf": [own, schema]}
            answer["content"] = {"application/json": {"schema": schema}}


def allowed_methods(scope: Scope) -> list[str]:
    """Every method some route serves at this path."""
    methods: set[str] = set()
    for route in flat_routes(scope["app"].router.routes):
        if isinstance(route, Route) and route.methods and route.matches(scope)[0] is not Match.NONE:
            methods.update(route.methods)
    return sorted(methods)
