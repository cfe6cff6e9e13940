"""`comfy-serverless keys …`: the CLI face of KeyAdministration.

    keys create [--tier T] [--public] [--admin] [--name N] [--limit NAME=VALUE …]
    keys list
    keys show KEY_ID
    keys limits KEY_ID NAME=VALUE …      (VALUE `none` drops that override)
    keys rotate KEY_ID                   (prints the new key; the old one stops working)
    keys revoke KEY_ID

A new or rotated key is the only thing printed on stdout; everything else is JSON.

It sits beside cli.py rather than in auth/, because it opens the whole process's Services:
auth/ stays a domain package that knows nothing of how a process is built.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from comfy_serverless.auth.administration import KeyAdministration, key_view, parse_limits
from comfy_serverless.errors import ApiError
from comfy_serverless.services import Services, open_services
from comfy_serverless.settings import Settings

__all__ = ["add_key_commands"]

KeyCommand = Callable[[KeyAdministration, Services, argparse.Namespace], Awaitable[str]]


def _limit_pairs(values: list[str]) -> dict[str, int | None]:
    pairs: dict[str, Any] = {}
    for value in values:
        name, sep, number = value.partition("=")
        if not sep:
            raise SystemExit(f"--limit takes NAME=VALUE, not {value!r}")
        pairs[name.strip()] = number.strip()
    return parse_limits(pairs)


def _json(value: Any) -> str:
    return json.dumps(value, indent=2)


async def _create(keys: KeyAdministration, services: Services, args: argparse.Namespace) -> str:
    issued = await keys.create("public" if args.public else "secret", args.tier,
                               is_admin=args.admin, name=args.name,
                               custom_limits=_limit_pairs(args.limit) or None)
    return issued.plaintext


async def _list(keys: KeyAdministration, services: Services, args: argparse.Namespace) -> str:
    return _json([key_view(key, services.access.policy) for key in await keys.list()])


async def _show(keys: KeyAdministration, services: Services, args: argparse.Namespace) -> str:
    return _json(key_view(await keys.get(args.key_id), services.access.policy))


async def _limits(keys: KeyAdministration, services: Services, args: argparse.Namespace) -> str:
    key = await keys.set_limits(args.key_id, _limit_pairs(args.pairs))
    return _json(key_view(key, services.access.policy))


async def _rotate(keys: KeyAdministration, services: Services, args: argparse.Namespace) -> str:
    plaintext, _ = await keys.rotate(args.key_id)
    return plaintext


async def _revoke(keys: KeyAdministration, services: Services, args: argparse.Namespace) -> str:
    return _json(key_view(await keys.revoke(args.key_id), services.access.policy))


async def _run(settings: Settings, command: KeyCommand, args: argparse.Namespace) -> str:
    async with open_services(settings) as services:
        return await command(KeyAdministration(services.store, services.access.policy),
                             services, args)


def _handler(command: KeyCommand) -> Callable[[Settings, argparse.Namespace], int]:
    def handle(settings: Settings, args: argparse.Namespace) -> int:
        try:
            print(asyncio.run(_run(settings, command, args)))
        except ApiError as exc:
            print(f"error: {exc.message} {json.dumps(exc.details)}", file=sys.stderr)
            return 2
        return 0
    return handle


def add_key_commands(commands: Any) -> None:
    keys = commands.add_parser("keys", help="API keys").add_subparsers(dest="keys", required=True)
    create = keys.add_parser("create", help="print one new API key on stdout")
    create.add_argument("--tier", default="basic")
    create.add_argument("--public", action="store_true", help="a comfyui_pk_ key")
    create.add_argument("--admin", action="store_true", help="an admin-scoped key")
    create.add_argument("--name")
    create.add_argument("--limit", action="append", default=[], metavar="NAME=VALUE",
                        help="a custom limit, e.g. requests_per_minute=120 (repeatable)")
    create.set_defaults(handler=_handler(_create))
    keys.add_parser("list", help="every key, as JSON").set_defaults(handler=_handler(_list))
    for name, command, help_text in (
        ("show", _show, "one key, as JSON"),
        ("rotate", _rotate, "print a new secret for the key; the old one stops working"),
        ("revoke", _revoke, "the key stops working"),
    ):
        parser = keys.add_parser(name, help=help_text)
        parser.add_argument("key_id")
        parser.set_defaults(handler=_handler(command))
    limits = keys.add_parser("limits", help="set custom limits (VALUE none drops one)")
    limits.add_argument("key_id")
    limits.add_argument("pairs", nargs="+", metavar="NAME=VALUE")
    limits.set_defaults(handler=_handler(_limits))
