"""Checks an answer against the served OpenAPI document: its status is documented for the
operation, with its media type and required headers, and a JSON body fits the declared
schema."""

from __future__ import annotations

from typing import Any

import httpx
from jsonschema import Draft202012Validator
from referencing import Registry
from referencing.jsonschema import DRAFT202012

__all__ = ["assert_documented", "schema_validator"]


def schema_validator(document: dict[str, Any], schema: dict[str, Any]) -> Draft202012Validator:
    """A validator for `schema`, whose `#/components/…` references name the document's."""
    resource = DRAFT202012.create_resource(document)
    registry: Registry[Any] = Registry().with_resource("openapi.json", resource)
    rebased = _rebased(schema)
    return Draft202012Validator(rebased, registry=registry)


def _rebased(schema: Any) -> Any:
    if isinstance(schema, dict):
        return {key: f"openapi.json{value}" if key == "$ref" else _rebased(value)
                for key, value in schema.items()}
    if isinstance(schema, list):
        return [_rebased(item) for item in schema]
    return schema


def _resolved(document: dict[str, Any], item: dict[str, Any]) -> dict[str, Any]:
    """A `$ref` to `#/components/...` replaced by what it names."""
    reference = item.get("$ref")
    if reference is None:
        return item
    found: dict[str, Any] = document
    for part in reference.removeprefix("#/").split("/"):
        found = found[part]
    return found


def assert_documented(document: dict[str, Any], response: httpx.Response, path: str) -> None:
    """`path` is the route's template, such as `/v1/workflows/{execution_id}/status`."""
    method = response.request.method.lower()
    answers = document["paths"][path][method]["responses"]
    status = str(response.status_code)
    assert status in answers, f"{method.upper()} {path} answered an undocumented {status}"
    for name, header in answers[status].get("headers", {}).items():
        declared_header = _resolved(document, header)
        if declared_header.get("required"):
            assert name in response.headers, f"{method.upper()} {path} {status}: no {name}"
    content = answers[status].get("content")
    if content is None:
        assert not response.content, f"{method.upper()} {path} {status} has a body"
        return
    media_type = response.headers["content-type"].split(";")[0].strip()
    declared = content.get(media_type) or content.get("*/*")
    assert declared is not None, f"{method.upper()} {path} {status}: {media_type} undeclared"
    if media_type == "application/json":
        errors = sorted(schema_validator(document, declared["schema"]).iter_errors(
            response.json()), key=str)
        assert not errors, f"{method.upper()} {path} {status}: {errors[0]}"
