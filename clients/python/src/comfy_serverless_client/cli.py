"""`comfy-serverless-client` (also `comfy-serverless run|status|cancel|results|events` when
the service is installed): run a workflow with a live progress bar, Ctrl-C to cancel it.

The URL and key come from --url/--api-key, else COMFY_SERVERLESS_URL/
COMFY_SERVERLESS_API_KEY, else the config file (COMFY_SERVERLESS_CONFIG, by default
~/.config/comfy-serverless/client.toml, with `url = "…"` and `api_key = "…"`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from comfy_serverless_client.client import Client
from comfy_serverless_client.errors import ApiError, ComfyServerlessError
from comfy_serverless_client.models import Progress, Results, StreamEvent
from comfy_serverless_client.progress_bar import ProgressBar

__all__ = ["COMMANDS", "main"]

COMMANDS = ("run", "status", "cancel", "results", "events")
_CONFIG = Path("~/.config/comfy-serverless/client.toml")


def _config_file() -> dict[str, Any]:
    path = Path(os.environ.get("COMFY_SERVERLESS_CONFIG", str(_CONFIG))).expanduser()
    return tomllib.loads(path.read_text()) if path.is_file() else {}


def _client(args: argparse.Namespace) -> Client:
    config = _config_file()
    url = args.url or os.environ.get("COMFY_SERVERLESS_URL") or config.get("url")
    key = (args.api_key or os.environ.get("COMFY_SERVERLESS_API_KEY")
           or config.get("api_key"))
    return Client(url, key)


def _assignment(text: str) -> tuple[str, Any]:
    """`--set name=value`: JSON when it parses (numbers, true, null), else the text."""
    name, equals, value = text.partition("=")
    if not equals or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    try:
        return name, json.loads(value)
    except ValueError:
        return name, value


def _emit(args: argparse.Namespace, machine: object, human: str) -> None:
    print(json.dumps(machine) if args.json else human, flush=True)


def _run(client: Client, args: argparse.Namespace) -> int:
    workflow = json.loads(Path(args.workflow).read_text())
    accepted = client.submit(workflow, dict(args.set or []))
    bar = None if args.json else ProgressBar(sys.stderr)
    try:
        _follow(client, accepted.execution_id, bar)
    except KeyboardInterrupt:
        cancelled = client.cancel(accepted.execution_id)
        if bar is not None:
            bar.finish(f"cancelled {cancelled.execution_id}")
        _emit(args, cancelled.model_dump(mode="json"), f"cancelled {cancelled.execution_id}")
        return 130
    results = client.results(accepted.execution_id)
    assert results is not None
    return _save(client, args, results)


def _follow(client: Client, execution_id: str, bar: ProgressBar | None) -> None:
    if bar is not None:
        bar.status(f"submitted {execution_id}: queued")
    for event in client.events(execution_id):
        if bar is None:
            continue
        if event.event == "progress":
            bar.update(Progress.model_validate(event.data))
        elif event.event == "status" and event.data["status"] != "completed":
            bar.status(f"{execution_id}: {event.data['status']}")
        elif event.event == "end" and event.data["status"] == "completed":
            bar.complete(f"{execution_id} completed")
        elif event.event == "end":
            bar.finish(f"{execution_id}: {event.data['status']}")


def _save(client: Client, args: argparse.Namespace, results: Results) -> int:
    files = client.download(results, args.out) if args.out else []
    _emit(args, {**results.model_dump(mode="json"), "files": [str(path) for path in files]},
          "\n".join([f"{results.execution_id} {results.status}"]
                    + [f"saved {path}" for path in files]
                    + [output.storage.url for output in results.results.outputs
                       if not files]))
    return 0


def _status(client: Client, args: argparse.Namespace) -> int:
    status = client.status(args.execution_id)
    step = f" step {status.current_step}/{status.total_steps}" if status.total_steps else ""
    _emit(args, status.model_dump(mode="json"),
          f"{status.execution_id} {status.status} {status.progress:.0%} "
          f"{status.current_node or ''}{step}".rstrip())
    return 0


def _cancel(client: Client, args: argparse.Namespace) -> int:
    cancelled = client.cancel(args.execution_id)
    _emit(args, cancelled.model_dump(mode="json"), f"cancelled {cancelled.execution_id}")
    return 0


def _results(client: Client, args: argparse.Namespace) -> int:
    results = client.results(args.execution_id, wait=args.wait)
    if results is None:
        _emit(args, {"execution_id": args.execution_id, "status": "unfinished"},
              f"{args.execution_id} has not finished")
        return 2
    return _save(client, args, results)


def _events(client: Client, args: argparse.Namespace) -> int:
    event: StreamEvent
    for event in client.events(args.execution_id, last_event_id=args.last_event_id):
        _emit(args, event.model_dump(mode="json"),
              f"{event.id} {event.event} {json.dumps(event.data)}")
    return 0


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", help="the API's URL (COMFY_SERVERLESS_URL)")
    common.add_argument("--api-key", help="the API key (COMFY_SERVERLESS_API_KEY)")
    common.add_argument("--json", action="store_true", help="machine-readable output")
    parser = argparse.ArgumentParser(prog="comfy-serverless", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", parents=[common], help="run a workflow file")
    run.add_argument("workflow", help="a workflow (API format) or a request body, as JSON")
    run.add_argument("--set", action="append", type=_assignment, metavar="NAME=VALUE",
                     help="an input override (prompt, seed, steps, 3.text …)")
    run.add_argument("--out", default="outputs", help="where to save the outputs")
    for name, helptext in (("status", "show an execution's status"),
                           ("cancel", "cancel an execution"),
                           ("results", "show (and with --out, download) the results"),
                           ("events", "print an execution's events as they happen")):
        sub = commands.add_parser(name, parents=[common], help=helptext)
        sub.add_argument("execution_id")
    commands.choices["results"].add_argument("--out", help="download the outputs here")
    commands.choices["results"].add_argument("--wait", type=float, default=0)
    commands.choices["events"].add_argument("--last-event-id", type=int, default=0)
    return parser


_HANDLERS: dict[str, Callable[[Client, argparse.Namespace], int]] = {
    "run": _run, "status": _status, "cancel": _cancel, "results": _results, "events": _events}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        with _client(args) as client:
            return _HANDLERS[args.command](client, args)
    except ApiError as error:
        _emit(args, error.body.model_dump(mode="json"),
              f"error: {error.error_code}: {error.message}")
        return 1
    except ComfyServerlessError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
