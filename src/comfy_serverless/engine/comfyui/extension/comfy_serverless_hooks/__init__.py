"""comfy-serverless's hooks inside ComfyUI (loaded as a custom-node package, adds no node).

Runs in ComfyUI's own Python; the service passes this folder to a supervised ComfyUI, and
the operator of an attached one copies it into its `custom_nodes` folder.

1. The prompt that nodes write into their files' metadata (the hidden `PROMPT` input of
   SaveImage, SaveVideo, SaveAudio ...) is the user's own graph: the nodes the worker added
   (its pinned loaders, listed in the prompt's `extra_data` as `cs_worker_nodes`) and its
   marks (`cs_run` on output nodes, `cs_tuning` on every node of an exact run) are left
   out. ComfyUI itself still runs and caches the whole prompt.
2. `POST /comfy-serverless/delete {"type", "subfolder", "filename"[, "identity"]}` deletes
   one file from ComfyUI's output or temp folder, or from `input/comfy-serverless/` (the
   worker's staged inputs), so that a worker that reads outputs over HTTP can remove them
   once they are stored. With an `identity` (as the written route lists it), a file of that
   name that is not that very file (a later prompt wrote the name again once the first file
   was gone) is left alone: `{"deleted": false, "replaced": true}`. Anything else (another
   folder, the operator's inputs, a path outside, a folder, a body that is not an object of
   strings, a NUL) answers 400.
3. `GET /comfy-serverless/hooks` tells the worker that these hooks are present, ComfyUI's
   pid and the UUID and PCI bus id of the GPU it computes on (for the worker's NVML).
4. A prompt whose `extra_data` carries `cs_tuning` (`execution_config`'s
   `gpu_memory_fraction` and `enable_optimization`) runs with them, and only it: ComfyUI
   keeps (1 - fraction) of the GPU's memory free (unloading cached models beyond the
   share first), and the optimizations (TF32 matrix products, cuDNN autotuning) are on or
   off, with deterministic cuDNN algorithms when off. The previous values come back after
   the prompt.
5. `GET /comfy-serverless/written/{prompt_id}` lists the files that appeared in output/
   and temp/ while the prompt ran (the folders are listed before and after it, in the
   thread that runs prompts one at a time), so that the worker removes what nodes write
   without reporting it (CheckpointSave, SaveLoRA, dataset savers ...), each with its
   identity (inode and modification time), so that the worker removes that file and never
   a later prompt's file of the same name.
"""

import asyncio
import os

import comfy.model_management as model_management
import execution
import folder_paths
import torch
from aiohttp import web
from comfy_execution import graph
from server import PromptServer

HOOKS_VERSION = 2
# The worker's marks on the nodes of a prompt (engine/comfyui/fresh_outputs.py).
_MARKS = frozenset({"cs_run", "cs_tuning"})
NODE_CLASS_MAPPINGS = {}

_full_prompt = graph.DynamicPrompt.get_original_prompt
# The worker's nodes in the prompt running now (ComfyUI runs one prompt at a time).
_worker_nodes = frozenset()


def _users_prompt(self):
    prompt = _full_prompt(self)
    users = {}
    for node_id, node in prompt.items():
        if node_id in _worker_nodes:
            continue
        inputs = node.get("inputs") if isinstance(node, dict) else None
        if isinstance(inputs, dict) and not _MARKS.isdisjoint(inputs):
            node = {**node, "inputs": {k: v for k, v in inputs.items() if k not in _MARKS}}
        users[node_id] = node
    return users


graph.DynamicPrompt.get_original_prompt = _users_prompt

_execute = execution.PromptExecutor.execute


def _backend_flags():
    return (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
            torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic)


def _set_backend_flags(flags):
    (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
     torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic) = flags


def _apply_tuning(tuning):
    saved = (model_management.EXTRA_RESERVED_VRAM, _backend_flags())
    if not tuning:
        return saved
    device = model_management.get_torch_device()
    fraction = tuning.get("gpu_memory_fraction")
    if fraction and getattr(device, "type", "cpu") != "cpu":
        total = model_management.get_total_memory(device)
        reserve = max(saved[0], int(total * (1.0 - float(fraction))))
        model_management.EXTRA_RESERVED_VRAM = reserve
        model_management.free_memory(reserve, device)
    if torch.cuda.is_available():
        optimize = bool(tuning.get("optimize", True))
        _set_backend_flags((optimize, optimize, optimize, not optimize))
    return saved


# The files each recent prompt wrote in output/ and temp/ (reported or not), by prompt id,
# and the prompt running now; read by the worker through GET /comfy-serverless/written.
_WRITTEN_KEPT = 64
_written = {}
_running = None


def _identity(stat):
    return f"{stat.st_ino}:{stat.st_mtime_ns}"


def _files_now():
    """(type, subfolder, name) → identity (inode and mtime) of every file in output/ and
    temp/: a file written again under an earlier file's name counts as written too."""
    found = {}
    for kind in ("output", "temp"):
        base = folder_paths.get_directory_by_type(kind)
        for root, _dirs, files in os.walk(base):
            subfolder = os.path.relpath(root, base)
            subfolder = "" if subfolder == "." else subfolder.replace(os.sep, "/")
            for name in files:
                try:
                    stat = os.stat(os.path.join(root, name))
                except OSError:  # removed meanwhile
                    continue
                found[(kind, subfolder, name)] = _identity(stat)
    return found


def _appeared(before, after):
    return sorted((*key, seen) for key, seen in after.items() if before.get(key) != seen)


def _execute_for_worker(self, prompt, prompt_id, extra_data={}, execute_outputs=[]):  # noqa: B006
    global _worker_nodes, _running
    extra_data = extra_data or {}
    _worker_nodes = frozenset(extra_data.get("cs_worker_nodes") or ())
    reserved, flags = _apply_tuning(extra_data.get("cs_tuning") or {})
    before, _running = _files_now(), prompt_id
    try:
        return _execute(self, prompt, prompt_id, extra_data, execute_outputs)
    finally:
        model_management.EXTRA_RESERVED_VRAM = reserved
        _set_backend_flags(flags)
        _worker_nodes = frozenset()
        _written[prompt_id] = _appeared(before, _files_now())
        while len(_written) > _WRITTEN_KEPT:
            _written.pop(next(iter(_written)))
        _running = None


execution.PromptExecutor.execute = _execute_for_worker
routes = PromptServer.instance.routes


def _device_identity():
    """The UUID and PCI bus id of the GPU ComfyUI computes on (NVML's spellings), so that
    the worker samples that very GPU whatever CUDA_VISIBLE_DEVICES says."""
    device = model_management.get_torch_device()
    if getattr(device, "type", "cpu") != "cuda":
        return {}
    props = torch.cuda.get_device_properties(device)
    identity = {}
    if getattr(props, "uuid", None) is not None:
        uuid = str(props.uuid)
        identity["uuid"] = uuid if uuid.startswith(("GPU-", "MIG-")) else "GPU-" + uuid
    if getattr(props, "pci_bus_id", None) is not None:
        domain, device_id = (getattr(props, "pci_domain_id", 0),
                             getattr(props, "pci_device_id", 0))
        identity["pci_bus_id"] = f"{domain:08X}:{props.pci_bus_id:02X}:{device_id:02X}.0"
    return identity


@routes.get("/comfy-serverless/hooks")
async def hooks(request):
    try:
        device = _device_identity()
    except Exception:  # a device that cannot be described: no identity
        device = {}
    return web.json_response({"version": HOOKS_VERSION, "pid": os.getpid(), "device": device})


@routes.get("/comfy-serverless/written/{prompt_id}")
async def written(request):
    """The files in output/ and temp/ that appeared while the prompt ran, reported by its
    nodes or not (waits for a running prompt to end, at most 30 s; [] for a prompt that
    never ran here)."""
    prompt_id = request.match_info["prompt_id"]
    for _ in range(600):
        if prompt_id != _running:
            break
        await asyncio.sleep(0.05)
    files = _written.get(prompt_id)
    if files is None:
        return web.json_response({"ran": prompt_id == _running, "files": []})
    return web.json_response({"ran": True, "files": [
        {"type": kind, "subfolder": subfolder, "filename": name, "identity": identity}
        for kind, subfolder, name, identity in files]})


# What the delete route may remove: the prompts' outputs and previews, and the worker's
# staged inputs; never the operator's published inputs elsewhere in input/.
_DELETABLE = {"output": "", "temp": "", "input": "comfy-serverless"}


def _bad(message):
    return web.json_response({"error": message}, status=400)


def _deletable_path(body):
    """The real path that `body` names, or an error message."""
    if not isinstance(body, dict):
        return None, "the body is not a JSON object"
    kind, subfolder, filename = (body.get(k, "") for k in ("type", "subfolder", "filename"))
    if not all(isinstance(v, str) and "\0" not in v for v in (kind, subfolder, filename)):
        return None, "type, subfolder and filename must be strings without NUL"
    if kind not in _DELETABLE or not filename:
        return None, "only a file of output, temp or input/comfy-serverless can be deleted"
    base = folder_paths.get_directory_by_type(kind)
    folder = os.path.realpath(os.path.join(base, _DELETABLE[kind]))
    path = os.path.realpath(os.path.join(base, subfolder, filename))
    if os.path.commonpath([folder, path]) != folder or path == folder:
        return None, "not a file of that folder"
    if os.path.isdir(path):
        return None, "a folder, not a file"
    return path, None


@routes.post("/comfy-serverless/delete")
async def delete_file(request):
    try:
        body = await request.json()
    except ValueError:
        return _bad("the body is not JSON")
    path, error = _deletable_path(body)
    if error is None and not isinstance(body.get("identity", ""), str):
        error = "identity must be a string"
    if error is not None:
        return _bad(error)
    try:
        if body.get("identity") and _identity(os.stat(path)) != body["identity"]:
            return web.json_response({"deleted": False, "replaced": True})
        os.unlink(path)
    except FileNotFoundError:
        return web.json_response({"deleted": False})
    except OSError as exc:
        return web.json_response({"error": exc.strerror or "cannot delete"}, status=409)
    return web.json_response({"deleted": True})
