"""The sources of a preload request (`POST /v1/models/preload` entries that name a `source`),
checked exactly as a job's are (executions/model_requests.py): parsed, matched against the
key's tier `model_sources`, checked by the SSRF rules of input images (the host is looked up,
not called) and against `require_model_hashes`, before anything connects to the source.

Refusals, each naming the entry as `models[<index>].<field>`:
- a value that is not a readable source, a folder that is not a ComfyUI model folder:
  400 INVALID_REQUEST;
- a host outside the tier's allowlist, an internal address, a sha256 outside the
  operator's allowlist: 403 MODEL_NOT_ALLOWED.
"""

from __future__ import annotations

from comfy_serverless.access.errors import ModelNotAllowed
from comfy_serverless.access.tiers import Tier
from comfy_serverless.errors import RequestInvalid
from comfy_serverless.model_sources import (
    HashNotAllowed,
    MalformedSource,
    SourceRefused,
    check_source,
    parse_source,
    placed_name,
)
from comfy_serverless.models.categories import MODEL_FOLDERS
from comfy_serverless.models.preload import SourceWanted
from comfy_serverless.settings import Settings

__all__ = ["checked_preload_source"]


async def checked_preload_source(field: str, value: str, sha256: str | None, folder: str,
                                 tier: Tier, settings: Settings) -> SourceWanted:
    """The entry at `field` (`models[<index>]`) as a checked source; the ApiError of what is
    wrong with it otherwise."""
    if folder not in MODEL_FOLDERS:
        raise RequestInvalid(f"{field}.folder is not a ComfyUI model folder",
                             {"field": f"{field}.folder", "allowed": sorted(MODEL_FOLDERS)})
    try:
        source = parse_source(value, sha256=sha256, hf_endpoint=settings.hf_endpoint)
    except MalformedSource as exc:
        raise RequestInvalid(f"{field}.source names a model source that cannot be read: {exc}",
                             {"field": f"{field}.source",
                              "suggestion": "Give an https:// URL, s3://<bucket>/<key> or "
                                            "hf://<owner>/<repo>/<path>[@revision]"}) from exc
    try:
        await check_source(source, settings.model_source_policy(tier.model_sources))
    except (SourceRefused, HashNotAllowed) as exc:
        raise ModelNotAllowed(
            f"The '{tier.name}' tier may not fetch the model of {field}.source: {exc}",
            {"field": f"{field}.source", "model_source": source.display, "tier": tier.name,
             "suggestion": "Use a source on a host the operator lists in the tier's "
                           "model_sources"}) from exc
    filename = placed_name(source.sha256, source.basename) if source.sha256 else \
        source.basename
    return SourceWanted(value, source.display, source.sha256, folder, filename,
                        tuple(tier.model_sources))
