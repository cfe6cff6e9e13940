"""Environments: what an engine has installed beyond ComfyUI itself (custom nodes at exact
commits, their pip requirements, models by source), described by a TOML manifest,
installed by `comfy-serverless engine install --manifest FILE`, and recorded so that a
worker can publish which environment it runs."""
