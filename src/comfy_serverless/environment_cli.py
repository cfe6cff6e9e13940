"""`comfy-serverless engine install --manifest FILE`: the environment of environments/
installed into the engine that `engine install` set up, with what the operator configured
(the model cache, its policy and credentials). It prints what it did and what the static
scan found; a failure exits 1 naming the node and the step. Beside cli.py, because it
opens the model cache that services.py builds."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from comfy_serverless.engine.comfyui.installer import EngineLayout
from comfy_serverless.environments.errors import InstallFailed, ManifestInvalid, redact_userinfo
from comfy_serverless.environments.install import InstallResult, install_environment
from comfy_serverless.environments.manifest import Manifest, load_manifest
from comfy_serverless.environments.models import ModelFetch
from comfy_serverless.model_sources import CachedModel, ModelSource
from comfy_serverless.services import build_model_cache
from comfy_serverless.settings import Settings

__all__ = ["install_manifest"]


def install_manifest(settings: Settings, layout: EngineLayout, manifest_file: Path) -> int:
    try:
        manifest = load_manifest(manifest_file, hf_endpoint=settings.hf_endpoint)
        result = asyncio.run(install_environment(
            manifest, settings.resolved_environment_dir(), layout,
            _model_fetch(settings, manifest)))
    except (ManifestInvalid, InstallFailed) as error:
        print(f"comfy-serverless: {error}", file=sys.stderr)  # credentials already redacted
        return 1
    print(redact_userinfo(_described(result, settings.resolved_environment_dir())))
    return 0


def _model_fetch(settings: Settings, manifest: Manifest) -> ModelFetch | None:
    """The manifest is the operator's: its model hosts are allowed, and the address rules
    (webhook_allowed_networks), credentials and require_model_hashes still apply."""
    if not manifest.models:
        return None
    cache = build_model_cache(settings)
    policy = settings.model_source_policy(sorted({model.source.host
                                                  for model in manifest.models}))

    async def fetch(source: ModelSource) -> CachedModel:
        return await cache.fetch(source, policy)
    return fetch


def _described(result: InstallResult, environment_dir: Path) -> str:
    environment = result.environment
    state = "already installed" if result.unchanged else "installed"
    lines = [f"environment '{environment.name}' ({environment.hash[:12]}) {state} "
             f"in {environment_dir}"]
    for node in environment.nodes:
        at = f" at {node.commit}" if node.commit else ""
        verdict = "verified (scan found nothing)" if node.verified else (
            f"NOT verified, {len(node.findings)} scan finding(s):")
        lines.append(f"  node '{node.name}'{at} from {node.source}: {verdict}")
        lines += [f"    {finding}" for finding in node.findings]
        if result.requirements.get(node.name):
            lines.append(f"    requirements: {', '.join(result.requirements[node.name])}")
    return "\n".join(lines)
