"""The synchronous mode of `POST /v1/workflows/execute`: `Prefer: wait=N` (RFC 7240).

With it, the submit holds its answer up to N seconds (at most 60): an execution that ends
in time answers as `GET …/results` would (200 with the results body, or the error of a
failed or cancelled one); otherwise the usual 202. Either way `Preference-Applied: wait=N`
says the preference was honoured. Other preferences, and a `wait` that is not a whole
number, are ignored, as the RFC asks.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

from fastapi.responses import JSONResponse

from comfy_serverless.errors import ApiError

__all__ = ["MAX_PREFER_WAIT", "answer_preferring_wait", "preferred_wait"]

MAX_PREFER_WAIT = 60


def preferred_wait(prefer: str | None) -> int | None:
    """The seconds a `Prefer` header asks to wait (capped at 60), or None."""
    for preference in (prefer or "").split(","):
        name, _, value = preference.split(";", 1)[0].partition("=")
        value = value.strip().strip('"')
        if name.strip().lower() == "wait" and value.isdigit():
            return min(int(value), MAX_PREFER_WAIT)
    return None


async def answer_preferring_wait(
    accepted: JSONResponse, prefer: str | None,
    results: Callable[[str, float], Awaitable[JSONResponse]],
) -> JSONResponse:
    """`accepted` (the 202, new or an idempotent replay) as it is, unless the client prefers
    to wait: then `results(execution_id, wait)`, the results route holding up to the wait,
    answers when the execution ended in time."""
    wait = preferred_wait(prefer)
    if wait is None:
        return accepted
    applied = {"Preference-Applied": f"wait={wait}", "Vary": "Prefer"}
    try:
        done = await results(json.loads(bytes(accepted.body))["execution_id"], float(wait))
    except ApiError as error:  # it ended in time, but failed or was cancelled
        error.headers.update(applied)
        raise
    answer = done if done.status_code == 200 else accepted
    answer.headers.update(applied)
    return answer
