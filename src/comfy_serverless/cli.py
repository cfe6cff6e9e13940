"""The `comfy-serverless` command: serve · worker · keys · migrate · engine · openapi, and
the client's run · status · cancel · results · events (from clients/python, see
docs/how-to/sdk.md)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from pathlib import Path
from typing import Any

from comfy_serverless.api.openapi_export import add_openapi_command
from comfy_serverless.convert_cli import add_convert_command
from comfy_serverless.engine.comfyui.installer import (
    TINY_CHECKPOINT_NAME,
    BasePython,
    EngineLayout,
    build_tiny_checkpoint,
    install_engine,
)
from comfy_serverless.environment_cli import install_manifest
from comfy_serverless.fleet.cli import add_fleet_commands
from comfy_serverless.fleet.identity import check_fleet_identity
from comfy_serverless.host_paths import elide_host_roots
from comfy_serverless.keys_cli import add_key_commands
from comfy_serverless.logs import configure_logging
from comfy_serverless.services import (
    build_engine,
    build_housekeeping,
    build_rescuer,
    build_worker,
    open_services,
    warmup_plan,
)
from comfy_serverless.settings import Settings
from comfy_serverless.store.store import Store
from comfy_serverless.webhooks.system_events import announce_maintenance
from comfy_serverless.worker.warmup import WarmupFileError

__all__ = ["main"]

_MAX_API_PROCESSES = 64  # as Settings.api_processes allows


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    from comfy_serverless.api.app import create_app
    from comfy_serverless.api.processes import serve_processes
    from comfy_serverless.api.server import serve_app

    settings = settings.model_copy(update={
        "host": args.host or settings.host, "port": args.port or settings.port,
        "api_processes": settings.api_processes if args.processes is None else args.processes})
    refusal = _serve_refusal(settings)
    if refusal is not None:
        print(refusal, file=sys.stderr)
        return 2
    if settings.embedded_worker and not settings.comfyui_url:
        install_engine(EngineLayout(settings.engine_dir))
    asyncio.run(_migrate(settings))
    if settings.api_processes > 1:
        return serve_processes(
            settings, lambda one, with_worker: create_app(one, with_worker=with_worker))
    serve_app(create_app(settings), settings)
    return 0


def _serve_refusal(settings: Settings) -> str | None:
    """What makes this configuration unable to serve, found before anything starts."""
    if not 1 <= settings.api_processes <= _MAX_API_PROCESSES:
        return f"--processes must be between 1 and {_MAX_API_PROCESSES}"
    if settings.api_processes > 1 and not settings.redis_url:
        return ("api_processes > 1 needs redis_url: each process would otherwise keep its "
                "own per-minute rate limits")
    if settings.embedded_worker:
        try:
            warmup_plan(settings)  # the embedded worker reads it again when it starts
        except WarmupFileError as exc:
            return str(exc)
    return None


async def _run_worker(settings: Settings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with open_services(settings) as services:
        await check_fleet_identity(services.store, settings)
        rescuer = build_rescuer(services)
        housekeeping = build_housekeeping(services)
        worker = build_worker(services, build_engine(settings))
        await worker.start()
        rescuer.start()
        housekeeping.start()
        try:
            await stop.wait()
        finally:
            await housekeeping.stop()
            await rescuer.stop()
            await worker.stop()


def _worker(settings: Settings, args: argparse.Namespace) -> int:
    asyncio.run(_run_worker(settings))
    return 0


async def _migrate(settings: Settings) -> list[int]:
    store = await Store.open(settings.resolved_database_url())
    try:
        return await store.migrate()
    finally:
        await store.close()


def _migrate_command(settings: Settings, args: argparse.Namespace) -> int:
    applied = asyncio.run(_migrate(settings))
    print(f"applied {len(applied)} migration(s)", file=sys.stderr)
    return 0


async def _announce(settings: Settings, message: str, starts_at: str | None,
                    ends_at: str | None) -> int:
    async with open_services(settings) as services:
        return await announce_maintenance(services.store, message, starts_at, ends_at,
                                          settings.webhook_max_retries)


def _maintenance(settings: Settings, args: argparse.Namespace) -> int:
    notified = asyncio.run(_announce(settings, args.message, args.starts_at, args.ends_at))
    print(f"system.maintenance queued for {notified} endpoint(s)", file=sys.stderr)
    return 0


def _engine_install(settings: Settings, args: argparse.Namespace) -> int:
    base = BasePython(executable=args.python or Path(sys.executable),
                      inherit_packages=args.system_site_packages, wheels=args.wheels)
    layout = install_engine(EngineLayout(settings.engine_dir), force=args.force, base=base)
    print(layout.root)
    if args.tiny_checkpoint:
        print(build_tiny_checkpoint(layout))
    if args.manifest is not None:
        return install_manifest(settings, layout, args.manifest)
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="comfy-serverless", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="the API, with an embedded worker by default")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--processes", type=int, help="API processes on the port (api_processes)")
    serve.set_defaults(handler=_serve)

    commands.add_parser("worker", help="a standalone worker").set_defaults(handler=_worker)
    commands.add_parser("migrate", help="apply database migrations").set_defaults(
        handler=_migrate_command)

    add_key_commands(commands)
    add_fleet_commands(commands)
    add_convert_command(commands)
    add_openapi_command(commands)

    maintenance = commands.add_parser("maintenance", help="announce maintenance").add_subparsers(
        dest="maintenance", required=True)
    announce = maintenance.add_parser("announce", help="send system.maintenance to endpoints")
    announce.add_argument("--message", required=True)
    announce.add_argument("--starts-at")
    announce.add_argument("--ends-at")
    announce.set_defaults(handler=_maintenance)

    _add_engine_commands(commands)
    return parser


def _add_engine_commands(commands: Any) -> None:
    engine = commands.add_parser("engine", help="the ComfyUI engine").add_subparsers(
        dest="engine", required=True)
    install = engine.add_parser("install", help="install ComfyUI and its virtualenv")
    install.add_argument("--force", action="store_true")
    install.add_argument("--tiny-checkpoint", action="store_true",
                         help=f"also build the random-weight {TINY_CHECKPOINT_NAME}")
    install.add_argument("--python", type=Path,
                         help="build ComfyUI's venv on this Python (default: this one's)")
    install.add_argument("--system-site-packages", action="store_true",
                         help="the venv sees that Python's packages: its torch is used as is")
    install.add_argument("--wheels", type=Path,
                         help="offline: pip takes packages from this folder of wheels only")
    install.add_argument("--manifest", type=Path,
                         help="then install this environment (custom nodes, their pip "
                              "requirements, models): docs/how-to/models.md")
    install.set_defaults(handler=_engine_install)


# The client commands live in the SDK's distribution (clients/python).
_CLIENT_COMMANDS = frozenset({"run", "status", "cancel", "results", "events"})


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in _CLIENT_COMMANDS:
        try:
            from comfy_serverless_client.cli import main as client_main
        except ImportError:
            print("comfy-serverless: `pip install ./clients/python` for the client commands",
                  file=sys.stderr)
            return 2
        return client_main(argv)
    args = _parser().parse_args(argv)
    settings = Settings()
    configure_logging(settings.log_format)
    elide_host_roots([settings.resolved_data_dir(), settings.engine_dir.expanduser().resolve(),
                      settings.comfyui_dir()])
    with contextlib.suppress(KeyboardInterrupt):
        return int(args.handler(settings, args))
    return 130


if __name__ == "__main__":
    sys.exit(main())
