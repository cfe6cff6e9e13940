"""FastAPI dependencies, as Annotated aliases so that routes read as plain signatures."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from comfy_serverless.access.errors import Forbidden
from comfy_serverless.auth.keys import authenticate, parse_bearer
from comfy_serverless.services import Services
from comfy_serverless.store.records import ApiKeyRecord

__all__ = ["RATE_DECISION_STATE", "AdminKey", "CurrentKey", "SecretKey", "ServicesDep"]

# Where a request keeps its rate-limit decision, for the response headers (api/headers.py).
RATE_DECISION_STATE = "rate_decision"


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(_services)]


async def _current_key(
    request: Request, services: ServicesDep,
    authorization: Annotated[str | None, Header()] = None,
) -> ApiKeyRecord:
    """Authenticate, then spend one request of the key's per-minute budget (or 429)."""
    key = await authenticate(services.store, parse_bearer(authorization))
    decision = await services.access.throttle(key)
    if decision is not None:
        setattr(request.state, RATE_DECISION_STATE, decision)
    return key


CurrentKey = Annotated[ApiKeyRecord, Depends(_current_key)]


def _secret_key(key: CurrentKey) -> ApiKeyRecord:
    """A public key (`comfyui_pk_…`) may only submit, read and cancel its own executions,
    and list models; every other route needs a secret key."""
    if key.is_public:
        raise Forbidden("A public key (comfyui_pk_) cannot use this route; use a secret key",
                        {"required_key_type": "secret", "key_id": key.id})
    return key


SecretKey = Annotated[ApiKeyRecord, Depends(_secret_key)]


def _admin_key(key: SecretKey) -> ApiKeyRecord:
    if not key.is_admin:
        raise Forbidden("This route needs an admin-scoped API key",
                        {"required_scope": "admin", "key_id": key.id})
    return key


AdminKey = Annotated[ApiKeyRecord, Depends(_admin_key)]
