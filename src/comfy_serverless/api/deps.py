"""FastAPI dependencies, as Annotated aliases so that routes read as plain signatures."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from comfy_serverless.auth.keys import authenticate, parse_bearer
from comfy_serverless.services import Services
from comfy_serverless.store.records import ApiKeyRecord

__all__ = ["CurrentKey", "ServicesDep"]


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(_services)]


async def _current_key(
    services: ServicesDep, authorization: Annotated[str | None, Header()] = None
) -> ApiKeyRecord:
    return await authenticate(services.store, parse_bearer(authorization))


CurrentKey = Annotated[ApiKeyRecord, Depends(_current_key)]
