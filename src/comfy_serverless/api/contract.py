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

from collections.abc import Callable, Iterator, Sequence
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute, Match, Route
from starlette.types import Scope

from comfy_serverless.api.deps import DEPENDENCY_ERRORS
from comfy_serverless.api.schemas import error_responses

__all__ = ["allowed_methods", "declare_error_answers", "dependency_calls", "flat_routes"]

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
    """Declare each route's error answers, and serve an OpenAPI document without FastAPI's
    default 422 (which this service never answers for a malformed request)."""
    for route in flat_routes(app.routes):
        if isinstance(route, APIRoute):
            missing = _error_statuses(route) - set(route.responses)
            route.responses.update(error_responses(*sorted(missing)))
    app.openapi = _openapi_without_default_422(app)  # type: ignore[method-assign]


def _openapi_without_default_422(app: FastAPI) -> Callable[[], dict[str, Any]]:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version,
                                 description=app.description, routes=app.routes)
            for path_item in schema["paths"].values():
                for operation in path_item.values():
                    _errors_as_json(operation.get("responses", {}))
            components = schema.get("components", {}).get("schemas", {})
            for unused in ("HTTPValidationError", "ValidationError"):
                components.pop(unused, None)
            app.openapi_schema = schema
        return app.openapi_schema

    return openapi


def _errors_as_json(answers: dict[str, Any]) -> None:
    """Drop FastAPI's default 422; every error answer is JSON in the spec's error shape,
    whatever media type the route's success answer has (text, HTML)."""
    if answers.get("422", {}).get("description") == "Validation Error":
        del answers["422"]
    for status, answer in answers.items():
        if status.isdigit() and int(status) >= 400:
            answer["content"] = {"application/json": {"schema": {"$ref": _ERROR_BODY}}}


def allowed_methods(scope: Scope) -> list[str]:
    """Every method some route serves at this path."""
    methods: set[str] = set()
    for route in flat_routes(scope["app"].router.routes):
        if isinstance(route, Route) and route.methods and route.matches(scope)[0] is not Match.NONE:
            methods.update(route.methods)
    return sorted(methods)
