"""The response headers the OpenAPI document declares, so that a generated client (and a
reader of /docs) knows them without reading our source:

- on every answer: `API-Version`, `API-Deprecated`, `API-Sunset` (spec §7.2, api/headers.py);
- on every answer to a keyed request: the rate limit's `X-RateLimit-*`, `RateLimit` and
  `RateLimit-Policy` (spec §6.2, access/errors.py);
- on a 429 and a 503: `Retry-After`, in seconds;
- on execute: `Idempotent-Replayed` (an idempotent replay) and `Preference-Applied`
  (`Prefer: wait=N` honoured, api/sync_mode.py).

Each is declared once under `components.headers` and referenced where it applies.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

__all__ = ["declare_headers"]

_STRING = {"type": "string"}
_INTEGER = {"type": "integer"}
HEADERS: dict[str, dict[str, Any]] = {
    "API-Version": {"description": "The API version that answered (`v1`)",
                    "schema": _STRING, "required": True},
    "API-Deprecated": {"description": "`true` once this API version is deprecated",
                       "schema": {"type": "string", "enum": ["true", "false"]},
                       "required": True},
    "API-Sunset": {"description": "When this API version stops being served, or `none`",
                   "schema": _STRING, "required": True},
    "X-RateLimit-Limit": {"description": "Requests a rested key may send at once (its rate "
                                         "per minute plus its burst allowance)",
                          "schema": _INTEGER},
    "X-RateLimit-Remaining": {"description": "Requests the key may still send now",
                              "schema": _INTEGER},
    "X-RateLimit-Reset": {"description": "Unix time when the key's budget is full again",
                          "schema": _INTEGER},
    "RateLimit": {"description": "The IETF draft's form: `\"requests\";r=REMAINING;t=SECONDS`",
                  "schema": _STRING},
    "RateLimit-Policy": {"description": "The IETF draft's policy: "
                                        "`\"requests\";q=RATE;w=60;burst=BURST`",
                         "schema": _STRING},
    "Retry-After": {"description": "Seconds to wait before trying again", "schema": _INTEGER},
    "Idempotent-Replayed": {"description": "`true` when this answers an earlier request with "
                                           "the same idempotency key, which ran only once",
                            "schema": {"type": "string", "enum": ["true"]}},
    "Preference-Applied": {"description": "`wait=N` when `Prefer: wait=N` was honoured",
                           "schema": _STRING},
}
_VERSION = ("API-Version", "API-Deprecated", "API-Sunset")
_RATE = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset", "RateLimit",
         "RateLimit-Policy")
_EXECUTE = ("post", "/v1/workflows/execute")


def declare_headers(document: dict[str, Any], keyed: set[tuple[str, str]]) -> None:
    """Add the headers to every answer of the document. `keyed`: the (method, path) of each
    operation that takes an API key (and so counts against its rate limit)."""
    document.setdefault("components", {})["headers"] = copy.deepcopy(HEADERS)
    for method, path, status, answer in _answers(document):
        names = list(_VERSION)
        if (method, path) in keyed:
            names += _RATE
        if status in ("429", "503"):
            names.append("Retry-After")
        if (method, path) == _EXECUTE and status in ("200", "202"):
            names += ["Idempotent-Replayed", "Preference-Applied"]
        answer["headers"] = {name: {"$ref": f"#/components/headers/{name}"} for name in names}


def _answers(document: dict[str, Any]) -> Iterator[tuple[str, str, str, dict[str, Any]]]:
    for path, path_item in document.get("paths", {}).items():
        for method, operation in path_item.items():
            for status, answer in operation.get("responses", {}).items():
                yield method, path, status, answer
