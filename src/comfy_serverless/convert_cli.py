"""`comfy-serverless convert FILE`: a workflow file in either format, printed in the API
format, with the warnings on stderr. The catalog is a saved `/object_info` (`--object-info`)
or else the one the workers published to the configured database."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from comfy_serverless.errors import ApiError
from comfy_serverless.services import open_services
from comfy_serverless.settings import Settings
from comfy_serverless.validation.catalog import NodeCatalog
from comfy_serverless.validation.prepare import prepare_workflow

__all__ = ["add_convert_command"]


async def _published_catalog(settings: Settings) -> NodeCatalog | None:
    async with open_services(settings) as services:
        return await services.catalogs.current()


def _convert(settings: Settings, args: argparse.Namespace) -> int:
    workflow: Any = json.loads(Path(args.file).read_text())
    catalog = (NodeCatalog.from_object_info(json.loads(Path(args.object_info).read_text()))
               if args.object_info else asyncio.run(_published_catalog(settings)))
    try:
        prepared = prepare_workflow(workflow if isinstance(workflow, dict) else {}, {},
                                    settings.validation_rules(), catalog)
    except ApiError as error:
        print(json.dumps(error.body(), indent=2), file=sys.stderr)
        return 1
    for warning in prepared.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(json.dumps(prepared.graph, indent=2))
    return 0


def add_convert_command(commands: Any) -> None:
    convert = commands.add_parser("convert", help="print a workflow file in the API format")
    convert.add_argument("file", help="a UI-format or API-format workflow (JSON)")
    convert.add_argument("--object-info", help="the node catalog: a saved GET /object_info")
    convert.set_defaults(handler=_convert)
