"""What can go wrong with an environment: a manifest that does not say what it must
(`ManifestInvalid`, naming the field), and an install that failed (`InstallFailed`, naming
the node and the step, e.g. "node 'cs-echo': clone failed: …")."""

from __future__ import annotations

from comfy_serverless.errors import ComfyServerlessError

__all__ = ["InstallFailed", "ManifestInvalid"]


class ManifestInvalid(ComfyServerlessError):
    """`field` is where in the manifest, e.g. `nodes[0].commit`."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"manifest: {field}: {problem}")
        self.field = field


class InstallFailed(ComfyServerlessError):
    """`subject` is what failed (`node 'name'`, `model 'name'`, `environment`), `step` what
    was being done (clone, copy, requirements, model…): the message names both."""

    def __init__(self, subject: str, step: str, detail: str) -> None:
        super().__init__(f"{subject}: {step}: {detail}")
        self.subject, self.step = subject, step

    @classmethod
    def node(cls, name: str, step: str, detail: str) -> InstallFailed:
        return cls(f"node '{name}'", step, detail)
