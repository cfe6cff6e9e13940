"""Key administration for admin-scoped keys: create, list, show, limits, rotate, revoke."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter
from pydantic import Field

from comfy_serverless.api.bodies import answer
from comfy_serverless.api.bodies.admin import IssuedKey, KeyList, KeyView
from comfy_serverless.api.deps import AdminKey, ServicesDep
from comfy_serverless.api.schemas import RequestBody
from comfy_serverless.auth.administration import KeyAdministration, key_view, parse_limits
from comfy_serverless.services import Services

__all__ = ["router"]

router = APIRouter(prefix="/v1/admin/keys", tags=["admin"])


class KeyCreate(RequestBody):
    type: Literal["secret", "public"] = "secret"
    tier: str = "basic"
    name: str | None = Field(default=None, max_length=200)
    admin: bool = False
    custom_limits: dict[str, Any] = Field(default_factory=dict)


class LimitsUpdate(RequestBody):
    custom_limits: dict[str, Any]


def _keys(services: Services) -> KeyAdministration:
    return KeyAdministration(services.store, services.access.policy,
                             on_change=services.keys.forget_all)


@router.post("", status_code=201, response_model=None, responses=answer(201, IssuedKey))
async def create(body: KeyCreate, admin: AdminKey, services: ServicesDep) -> dict[str, Any]:
    issued = await _keys(services).create(
        body.type, body.tier, is_admin=body.admin, name=body.name,
        custom_limits=parse_limits(body.custom_limits) or None)
    return {**key_view(issued.record, services.access.policy), "api_key": issued.plaintext}


@router.get("", response_model=None, responses=answer(200, KeyList))
async def list_keys(admin: AdminKey, services: ServicesDep) -> dict[str, Any]:
    keys = await _keys(services).list()
    return {"keys": [key_view(key, services.access.policy) for key in keys]}


@router.get("/{key_id}", response_model=None, responses=answer(200, KeyView))
async def show(key_id: str, admin: AdminKey, services: ServicesDep) -> dict[str, Any]:
    return key_view(await _keys(services).get(key_id), services.access.policy)


@router.patch("/{key_id}", response_model=None, responses=answer(200, KeyView))
async def set_limits(key_id: str, body: LimitsUpdate, admin: AdminKey, services: ServicesDep
                     ) -> dict[str, Any]:
    key = await _keys(services).set_limits(key_id, parse_limits(body.custom_limits))
    return key_view(key, services.access.policy)


@router.post("/{key_id}/rotate", response_model=None, responses=answer(200, IssuedKey))
async def rotate(key_id: str, admin: AdminKey, services: ServicesDep) -> dict[str, Any]:
    plaintext, key = await _keys(services).rotate(key_id)
    return {**key_view(key, services.access.policy), "api_key": plaintext}


@router.delete("/{key_id}", response_model=None, responses=answer(200, KeyView))
async def revoke(key_id: str, admin: AdminKey, services: ServicesDep) -> dict[str, Any]:
    return key_view(await _keys(services).revoke(key_id), services.access.policy)
