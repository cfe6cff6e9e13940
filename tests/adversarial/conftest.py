"""The hostile side of the service: tenants, receivers and image servers that try to break it.

Every test here plays one adversary against a running service (the session's `service`
fixture, a real ComfyUI behind it) or against the component that faces that adversary, and
each one failed before the fix it guards. To add a case, pick the file of its adversary:

- `test_tenant_*.py`: a tenant with a valid key who wants another tenant's files, or the
  server's, or to crash or stall the service with what it sends;
- `test_receivers.py`: a tenant's webhook receiver that answers slowly, hugely or never;
- `test_image_servers.py`: a tenant's image server that serves bombs, stalls or rebinds.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from comfy_serverless.testing import LocalService


@pytest.fixture(scope="session")
def tenant_a_key(service: LocalService) -> str:
    return service.new_unthrottled_key()


@pytest.fixture(scope="session")
def tenant_b_key(service: LocalService) -> str:
    return service.new_unthrottled_key()


@pytest.fixture
async def tenant_a(service: LocalService, tenant_a_key: str) -> AsyncIterator[httpx.AsyncClient]:
    """A tenant's client, with its own key."""
    async with httpx.AsyncClient(base_url=service.base_url, timeout=60,
                                 headers={"Authorization": f"Bearer {tenant_a_key}"}) as client:
        yield client


@pytest.fixture
async def tenant_b(service: LocalService, tenant_b_key: str) -> AsyncIterator[httpx.AsyncClient]:
    """Another tenant's client: it must never reach what tenant A owns."""
    async with httpx.AsyncClient(base_url=service.base_url, timeout=60,
                                 headers={"Authorization": f"Bearer {tenant_b_key}"}) as client:
        yield client
