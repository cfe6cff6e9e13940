"""Every submission's output nodes run again, while their upstream stays cached.

ComfyUI caches a node's result under a signature made of its class, every *literal* input
key of the prompt's node, and its ancestors' signatures; `get_input_data` hands a node only
the inputs its class declares. An identical resubmission is therefore answered from cache,
output nodes included: their history then names the files the first run wrote, which the
collector has already moved out of ComfyUI's folders.

So each output node of a submitted prompt (the catalog's `output_node: true`: every node
that writes files or texts) carries one more literal input, `cs_run`, whose value is the
prompt's own id. Its signature, and only its, differs from any earlier run's: ComfyUI runs
it again and it writes new files, while every node upstream is still served from cache.
The key never reaches the node's function, and comfy-serverless's hooks (see
`extension/comfy_serverless_hooks`) leave it out of the prompt that ComfyUI writes into the
files' metadata.

A prompt that asks for exact arithmetic (`enable_optimization: false`) carries one more
literal on *every* node, `cs_tuning`: no node of it is served from the cache of a run with
TF32 on (perhaps another tenant's), and no later default run is served from its results.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["RUN_MARK", "TUNING_MARK", "output_classes", "with_fresh_outputs", "worker_additions"]

RUN_MARK = "cs_run"
TUNING_MARK = "cs_tuning"


def output_classes(object_info: Mapping[str, Any]) -> frozenset[str]:
    """The node classes that ComfyUI runs as outputs, from its /object_info."""
    return frozenset(name for name, info in object_info.items()
                     if isinstance(info, Mapping) and info.get("output_node"))


def with_fresh_outputs(prompt: Mapping[str, Any], outputs: frozenset[str], run_id: str,
                       tuning_mark: str | None = None) -> dict[str, Any]:
    """`prompt` with every node of an output class marked with `run_id`, and every node
    with `tuning_mark` when there is one (a new dict; the nodes left unmarked are the very
    same objects)."""
    marked: dict[str, Any] = {}
    for node_id, node in prompt.items():
        if isinstance(node, Mapping):
            marks = {RUN_MARK: run_id} if node.get("class_type") in outputs else {}
            if tuning_mark is not None:
                marks[TUNING_MARK] = tuning_mark
            if marks:
                node = {**node, "inputs": {**(node.get("inputs") or {}), **marks}}
        marked[node_id] = node
    return marked


def worker_additions(prompt: Mapping[str, Any], workflow: Mapping[str, Any]) -> dict[str, Any]:
    """The prompt's `extra_data` naming the nodes the worker added to the user's workflow
    (its pinned loaders), which the hooks keep out of the files' metadata."""
    added = sorted(node_id for node_id in prompt if node_id not in workflow)
    return {"cs_worker_nodes": added} if added else {}
