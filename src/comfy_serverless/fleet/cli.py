"""`comfy-serverless fleet forget`: drop the recorded fleet identity after a deliberate change
of output storage or signing secret (stop every process first)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from comfy_serverless.settings import Settings
from comfy_serverless.store.store import Store

__all__ = ["add_fleet_commands"]


async def _forget(settings: Settings) -> bool:
    store = await Store.open(settings.resolved_database_url())
    try:
        await store.migrate()
        return await store.fleet.forget_identity()
    finally:
        await store.close()


def _forget_command(settings: Settings, args: argparse.Namespace) -> int:
    forgotten = asyncio.run(_forget(settings))
    print("fleet identity forgotten; the next process to start records it" if forgotten
          else "no fleet identity was recorded", file=sys.stderr)
    return 0


def add_fleet_commands(commands: Any) -> None:
    fleet = commands.add_parser("fleet", help="what the processes of a fleet share")
    actions = fleet.add_subparsers(dest="fleet", required=True)
    actions.add_parser("forget", help="drop the recorded storage and secret identity"
                       ).set_defaults(handler=_forget_command)
