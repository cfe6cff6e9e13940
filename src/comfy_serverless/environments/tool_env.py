"""The environment pip and git run with: an allow-list, not the service's own.

The installer's process holds the operator's secrets (`COMFY_SERVERLESS_*`: the database
URL, storage keys, `HF_TOKEN` …). pip expands `${VAR}` in requirement files and fetches
what they name, and a build backend runs a pack's code: neither may see them. So a tool
gets only what it needs to find itself, reach an index or a host (proxies, CA bundles,
an SSH agent) and be configured by the operator on purpose (`PIP_*`, a few `GIT_*`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

__all__ = ["tool_environment"]

_ALLOWED = frozenset({
    "PATH", "HOME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "TEMP", "TMP", "USER", "LOGNAME",
    "http_proxy", "https_proxy", "no_proxy", "all_proxy",
    "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY",
    "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE",
    "SSH_AUTH_SOCK",
    "GIT_SSH", "GIT_SSH_COMMAND", "GIT_SSL_CAINFO", "GIT_SSL_CAPATH", "GIT_PROXY_COMMAND",
    "GIT_CONFIG_GLOBAL", "GIT_CONFIG_NOSYSTEM", "GIT_EXEC_PATH", "GIT_TEMPLATE_DIR",
})
_ALLOWED_PREFIXES = ("LC_", "PIP_")


def tool_environment(extra: Mapping[str, str] | None = None,
                     source: Mapping[str, str] | None = None) -> dict[str, str]:
    """The allowed variables of `source` (the process's environment by default), then
    `extra` on top."""
    given = os.environ if source is None else source
    allowed = {key: value for key, value in given.items()
               if key in _ALLOWED or key.startswith(_ALLOWED_PREFIXES)}
    return {**allowed, **(extra or {})}
