"""What each route answers when it succeeds, as pydantic models for the OpenAPI document.

The routes build their bodies as dicts (executions/bodies.py and the like) and return them
as they are: these models only describe them, with the spec's examples, through each route's
`responses=` (never `response_model=`, which would re-serialise a body and could drop or
alter a field). tests/integration/test_documented_answers.py checks that real answers fit
them, tests/unit/test_openapi_document.py that their examples do, and
tests/unit/test_sdk_models.py that the Python SDK's own models parse those examples and name
no field the service does not send, so that none of them can drift.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from pydantic import BaseModel

__all__ = ["answer", "described"]


def answer(status: int, model: type[BaseModel], description: str | None = None
           ) -> dict[int | str, dict[str, Any]]:
    """One `responses` entry: a JSON body described by `model`."""
    return {status: {"model": model,
                     "description": description or HTTPStatus(status).phrase}}


def described(status: int, media_type: str, schema: dict[str, Any], description: str,
              example: Any = None) -> dict[int | str, dict[str, Any]]:
    """One `responses` entry for a body that is not JSON (an event stream, a file, text)."""
    content: dict[str, Any] = {"schema": schema}
    if example is not None:
        content["example"] = example
    return {status: {"description": description, "content": {media_type: content}}}
