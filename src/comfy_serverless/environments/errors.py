"""What can go wrong with an environment: a manifest that does not say what it must
(`ManifestInvalid`, naming the field), and an install that failed (`InstallFailed`, naming
the node and the step, e.g. "node 'cs-echo': clone failed: …")."""

from __future__ import annotations

import re

from comfy_serverless.errors import ComfyServerlessError

__all__ = ["InstallFailed", "ManifestInvalid", "redact_userinfo"]

_USERINFO = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)[^/\s@]+@")


def redact_userinfo(text: str) -> str:
    """`https://user:token@host/…` as `https://***@host/…`, wherever it occurs in `text`:
    a git URL's credentials are never printed, recorded or put in an error."""
    return _USERINFO.sub(r"\1***@", text)


class ManifestInvalid(ComfyServerlessError):
    """`field` is where in the manifest, e.g. `nodes[0].commit`."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(redact_userinfo(f"manifest: {field}: {problem}"))
        self.field = field


class InstallFailed(ComfyServerlessError):
    """`subject` is what failed (`node 'name'`, `model 'name'`, `environment`), `step` what
    was being done (clone, copy, requirements, model…): the message names both. Credentials
    in a URL (git's stderr repeats the URL) are redacted."""

    def __init__(self, subject: str, step: str, detail: str) -> None:
        super().__init__(redact_userinfo(f"{subject}: {step}: {detail}"))
        self.subject, self.step = subject, step

    @classmethod
    def node(cls, name: str, step: str, detail: str) -> InstallFailed:
        return cls(f"node '{name}'", step, detail)
