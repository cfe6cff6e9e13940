"""A submit may ask only for an environment that some worker has published: one that no
worker ever ran (a typo, a name made up) would sit in the tier's queue forever, count
against its queue size, and be walked past by every worker's claim. An environment whose
workers are all gone now is accepted (a fleet scaled to zero starts one when jobs wait):
its status then says why it waits (waiting.py).

One indexed read of a small table (the environments seen: store/workers.py), only for a
submit that asks for an environment."""

from __future__ import annotations

from comfy_serverless.environments.requests import EnvironmentRequest
from comfy_serverless.errors import RequestInvalid
from comfy_serverless.store.store import Store

__all__ = ["refuse_unknown_environment"]


async def refuse_unknown_environment(wanted: EnvironmentRequest | None, store: Store) -> None:
    """Raise RequestInvalid (400) when no worker has ever published `wanted`."""
    if wanted is None or await store.workers.environment_seen(wanted.name, wanted.hash_prefix):
        return
    if wanted.hash_prefix is not None and await store.workers.environment_seen(wanted.name,
                                                                                None):
        message = (f"no worker has ever published environment '{wanted.name}' at a hash "
                   f"starting with {wanted.hash_prefix}")
    else:
        message = f"no worker has ever published environment '{wanted.name}'"
    raise RequestInvalid(message, {"field": "environment", "environment": str(wanted)})
