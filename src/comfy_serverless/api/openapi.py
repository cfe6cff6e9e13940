"""The served OpenAPI document (spec §8): built from the routes once, then kept.

Beyond what FastAPI derives from the routes, it carries:
- `info` (title, description, contact, license) and `servers` from the settings;
- the security that is true of each operation: `ApiKeyAuth` (a bearer API key) on every
  route that needs a key, `MetricsToken` on /metrics (optional: without a `metrics_token`
  it answers on loopback only), none on the probes, the error pages and /files (whose
  signed URL is the credential);
- every error answer in the spec's error shape, without FastAPI's default 422
  (api/contract.py);
- the response headers of each answer (api/openapi_headers.py).

docs/reference/openapi.json holds it with the default settings; a test keeps the two equal.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from pydantic import BaseModel

from comfy_serverless.api.contract import dependency_calls, errors_as_json, flat_routes
from comfy_serverless.api.deps import current_key
from comfy_serverless.api.openapi_headers import declare_headers
from comfy_serverless.settings import Settings

__all__ = [
    "API_KEY_SCHEME",
    "METRICS_SCHEME",
    "METRICS_SECURITY",
    "build_document",
    "serve_document",
]

API_KEY_SCHEME = "ApiKeyAuth"
METRICS_SCHEME = "MetricsToken"
_SECURITY_SCHEMES = {
    API_KEY_SCHEME: {
        "type": "http", "scheme": "bearer", "bearerFormat": "API Key",
        "description": "An API key: `Authorization: Bearer comfyui_sk_…` (secret) or "
                       "`comfyui_pk_…` (public, fewer permissions).",
    },
    METRICS_SCHEME: {
        "type": "http", "scheme": "bearer",
        "description": "The `metrics_token` setting. Without one, /metrics needs no "
                       "credential but answers only while the service listens on loopback.",
    },
}
# /metrics: its token, or nothing at all (loopback without a metrics_token).
METRICS_SECURITY: list[dict[str, list[str]]] = [{METRICS_SCHEME: []}, {}]


def serve_document(app: FastAPI, settings: Settings) -> None:
    """Serve `build_document` as the app's OpenAPI document, built on first request."""
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build_document(app, settings)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def build_document(app: FastAPI, settings: Settings) -> dict[str, Any]:
    """FastAPI's document of the routes, completed as the module's docstring says."""
    document = get_openapi(
        title=settings.api_title, version=app.version, description=settings.api_description,
        routes=app.routes, contact=_contact(settings), license_info=_license(settings),
        servers=[{"url": url} for url in settings.api_servers] or None)
    for operation in _operations(document):
        errors_as_json(operation.get("responses", {}))
        _without_authorization_parameter(operation)
    components = document.setdefault("components", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        components.get("schemas", {}).pop(unused, None)
    components["securitySchemes"] = copy.deepcopy(_SECURITY_SCHEMES)
    declare_headers(document, _declare_security(document, app))
    _restore_examples(components.get("schemas", {}), app)
    return document


def _contact(settings: Settings) -> dict[str, str] | None:
    contact = {"name": settings.api_contact_name, "url": settings.api_contact_url,
               "email": settings.api_contact_email}
    given = {field: value for field, value in contact.items() if value}
    return given or None


def _license(settings: Settings) -> dict[str, str]:
    license_info = {"name": settings.api_license_name}
    if settings.api_license_url:
        license_info["url"] = settings.api_license_url
    return license_info


def _operations(document: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for path_item in document.get("paths", {}).values():
        yield from path_item.values()


def _without_authorization_parameter(operation: dict[str, Any]) -> None:
    """The key is the security scheme's: OpenAPI ignores an `Authorization` header
    parameter, and Swagger UI would show a second, useless field for it."""
    parameters = [parameter for parameter in operation.get("parameters", [])
                  if (parameter["in"], parameter["name"].lower()) != ("header", "authorization")]
    if parameters:
        operation["parameters"] = parameters
    else:
        operation.pop("parameters", None)


def _restore_examples(schemas: dict[str, Any], app: FastAPI) -> None:
    """The answer models' examples as the models give them: FastAPI drops every null from
    the document (`exclude_none`), examples included, so that a null field of an example
    would read as a missing one."""
    for route in flat_routes(app.routes):
        for answer in getattr(route, "responses", {}).values():
            model = answer.get("model")
            if isinstance(model, type) and issubclass(model, BaseModel):
                examples = model.model_json_schema().get("examples")
                if examples and model.__name__ in schemas:
                    schemas[model.__name__]["examples"] = examples


def _declare_security(document: dict[str, Any], app: FastAPI) -> set[tuple[str, str]]:
    """`ApiKeyAuth` on each operation whose route needs a key (through whatever dependency);
    the (method, path) of those operations."""
    keyed: set[tuple[str, str]] = set()
    for route in flat_routes(app.routes):
        if not isinstance(route, APIRoute) or not route.include_in_schema:
            continue
        if current_key in dependency_calls(route.dependant):
            for method in route.methods or ():
                operation = document["paths"][route.path_format][method.lower()]
                operation["security"] = [{API_KEY_SCHEME: []}]
                keyed.add((method.lower(), route.path_format))
    return keyed
