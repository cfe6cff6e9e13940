"""FastAPI dependencies, as Annotated aliases so that routes read as plain signatures."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Header, Request

from comfy_serverless.access.errors import Forbidden
from comfy_serverless.api.rate_state import AUTHENTICATED_KEY_STATE, RATE_DECISION_STATE
from comfy_serverless.auth.keys import parse_bearer
from comfy_serverless.services import Services
from comfy_serverless.store.records import ApiKeyRecord

__all__ = [
    "DEPENDENCY_ERRORS",
    "AdminKey",
    "CurrentKey",
    "SecretKey",
    "ServicesDep",
    "admit_key",
    "current_key",
]


async def _services(request: Request) -> Services:
    """Async, as every dependency here: FastAPI runs a plain `def` dependency in its thread
    pool, a hand-off to a thread and back on every request, for a few attribute reads."""
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(_services)]


async def admit_key(services: Services, authorization: str | None, state: dict[str, Any]
                    ) -> ApiKeyRecord:
    """Authenticate, then spend one request of the key's per-minute budget (or 429), once
    per request: the edge does it before the body is read; `state` remembers it."""
    known = state.get(AUTHENTICATED_KEY_STATE)
    if isinstance(known, ApiKeyRecord):
        return known
    key = await services.keys.authenticate(parse_bearer(authorization))
    state[AUTHENTICATED_KEY_STATE] = key
    decision = await services.access.throttle(key)
    if decision is not None:
        state[RATE_DECISION_STATE] = decision
    return key


async def current_key(
    request: Request, services: ServicesDep,
    authorization: Annotated[str | None, Header()] = None,
) -> ApiKeyRecord:
    return await admit_key(services, authorization, request.scope.setdefault("state", {}))


CurrentKey = Annotated[ApiKeyRecord, Depends(current_key)]


async def _secret_key(key: CurrentKey) -> ApiKeyRecord:
    """A public key (`comfyui_pk_…`) may only submit, read and cancel its own executions,
    and list models; every other route needs a secret key."""
    if key.is_public:
        raise Forbidden("A public key (comfyui_pk_) cannot use this route; use a secret key",
                        {"required_key_type": "secret", "key_id": key.id})
    return key


SecretKey = Annotated[ApiKeyRecord, Depends(_secret_key)]


async def _admin_key(key: SecretKey) -> ApiKeyRecord:
    if not key.is_admin:
        raise Forbidden("This route needs an admin-scoped API key",
                        {"required_scope": "admin", "key_id": key.id})
    return key


AdminKey = Annotated[ApiKeyRecord, Depends(_admin_key)]


# The error statuses each key dependency may answer with; the OpenAPI document declares them
# on every route that depends on it (api/contract.py).
DEPENDENCY_ERRORS: dict[object, tuple[int, ...]] = {
    current_key: (401, 429), _secret_key: (403,), _admin_key: (403,)}
