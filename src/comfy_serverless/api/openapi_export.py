"""Print the served OpenAPI document, as docs/reference/openapi.json holds it.

    python -m comfy_serverless.api.openapi_export > docs/reference/openapi.json
    comfy-serverless openapi > docs/reference/openapi.json

The settings come from the environment, as the service's do; the committed file is made
with the defaults (no COMFY_SERVERLESS_API_* variables set), and a test keeps it equal to
what a default service serves.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from comfy_serverless.settings import Settings

__all__ = ["REGENERATE", "add_openapi_command", "render"]

REGENERATE = "python -m comfy_serverless.api.openapi_export > docs/reference/openapi.json"


def render(settings: Settings) -> str:
    """The document as committed: pretty-printed, keys sorted, one final newline."""
    from comfy_serverless.api.app import create_app  # the app imports everything: not at once

    document = create_app(settings, with_worker=False).openapi()
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _print_document(settings: Settings, args: argparse.Namespace) -> int:
    sys.stdout.write(render(settings))
    return 0


def add_openapi_command(commands: Any) -> None:
    """`comfy-serverless openapi`: the same, as a subcommand of the service's CLI."""
    commands.add_parser("openapi", help="print the OpenAPI document (JSON)").set_defaults(
        handler=_print_document)


if __name__ == "__main__":
    sys.exit(_print_document(Settings(), argparse.Namespace()))
