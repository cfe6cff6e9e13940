"""comfy-serverless's hooks inside ComfyUI (loaded as a custom-node package, adds no node).

Runs in ComfyUI's own Python; the service passes this folder to a supervised ComfyUI, and
the operator of an attached one copies it into its `custom_nodes` folder.

1. The prompt that nodes write into their files' metadata (the hidden `PROMPT` input of
   SaveImage, SaveVideo, SaveAudio ...) is the user's own graph: the worker's pinned
   loader nodes (`cs_warm_*`, `cs_preload*`) and its per-run output mark (`cs_run`) are
   left out. ComfyUI itself still runs and caches the whole prompt.
2. `POST /comfy-serverless/delete {"type", "subfolder", "filename"}` deletes one file from
   ComfyUI's output, temp or input folder, so that a worker that reads outputs over HTTP
   can remove them once they are stored. A path outside that folder answers 400.
3. `GET /comfy-serverless/hooks` tells the worker that these hooks are present.
"""

import os

import folder_paths
from aiohttp import web
from comfy_execution import graph
from server import PromptServer

HOOKS_VERSION = 1
WORKER_NODE_PREFIXES = ("cs_warm_", "cs_preload")
RUN_MARK = "cs_run"
NODE_CLASS_MAPPINGS = {}

_full_prompt = graph.DynamicPrompt.get_original_prompt


def _users_prompt(self):
    prompt = _full_prompt(self)
    users = {}
    for node_id, node in prompt.items():
        if str(node_id).startswith(WORKER_NODE_PREFIXES):
            continue
        inputs = node.get("inputs") if isinstance(node, dict) else None
        if isinstance(inputs, dict) and RUN_MARK in inputs:
            node = {**node, "inputs": {k: v for k, v in inputs.items() if k != RUN_MARK}}
        users[node_id] = node
    return users


graph.DynamicPrompt.get_original_prompt = _users_prompt
routes = PromptServer.instance.routes


@routes.get("/comfy-serverless/hooks")
async def hooks(request):
    return web.json_response({"version": HOOKS_VERSION})


@routes.post("/comfy-serverless/delete")
async def delete_file(request):
    body = await request.json()
    folder = folder_paths.get_directory_by_type(str(body.get("type") or ""))
    if folder is None:
        return web.json_response({"error": "unknown folder type"}, status=400)
    folder = os.path.realpath(folder)
    relative = os.path.join(str(body.get("subfolder") or ""), str(body.get("filename") or ""))
    path = os.path.realpath(os.path.join(folder, relative))
    if os.path.commonpath([folder, path]) != folder or path == folder:
        return web.json_response({"error": "not a file of that folder"}, status=400)
    try:
        os.unlink(path)
    except FileNotFoundError:
        return web.json_response({"deleted": False})
    return web.json_response({"deleted": True})
