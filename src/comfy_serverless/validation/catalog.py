"""The node catalog: what the workers' ComfyUI instances can run, from their /object_info.

Several workers' catalogs merge into one: a node class is known if any worker has it, and a
combo (e.g. `ckpt_name`) accepts a value that any worker offers. A merged class keeps the
module every worker's copy comes from (`modules`): a job may be claimed by any of them, so
the class is core only where every copy is core, and it comes from every pack any copy
comes from (the validator allows it only if each of those packs is allowed).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

__all__ = ["InputSpec", "NodeCatalog", "NodeSpec", "types_compatible"]

PRIMITIVE_TYPES = frozenset({"INT", "FLOAT", "STRING", "BOOLEAN"})
MODEL_EXTENSIONS = (".safetensors", ".ckpt", ".pt", ".pth", ".bin", ".gguf", ".sft", ".onnx")
# The node a person most likely forgot, per missing input type (used in suggestions).
_PREFERRED_PRODUCERS = {
    "MODEL": "CheckpointLoaderSimple", "CLIP": "CheckpointLoaderSimple",
    "VAE": "CheckpointLoaderSimple", "CONDITIONING": "CLIPTextEncode",
    "LATENT": "EmptyLatentImage", "IMAGE": "LoadImage", "MASK": "LoadImageMask",
    "CONTROL_NET": "ControlNetLoader", "CLIP_VISION": "CLIPVisionLoader",
    "UPSCALE_MODEL": "UpscaleModelLoader", "SAMPLER": "KSamplerSelect", "SIGMAS": "BasicScheduler",
    "NOISE": "RandomNoise", "GUIDER": "BasicGuider",
}


def types_compatible(received: Any, expected: Any) -> bool:
    """ComfyUI's rule: equal, `*` on either side, or comma-separated unions that overlap."""
    if received == expected or received == "*" or expected == "*":
        return True
    if not isinstance(received, str) or not isinstance(expected, str):
        return False
    given = {part.strip() for part in received.split(",")}
    wanted = {part.strip() for part in expected.split(",")}
    return bool(given & wanted)


@dataclass(frozen=True)
class InputSpec:
    name: str
    required: bool
    type: str
    options: tuple[Any, ...] | None = None
    config: Mapping[str, Any] = field(default_factory=dict)
    legacy_combo: bool = False

    @classmethod
    def parse(cls, name: str, raw: Any, *, required: bool) -> InputSpec:
        kind = raw[0] if isinstance(raw, list | tuple) and raw else raw
        config = raw[1] if isinstance(raw, list | tuple) and len(raw) > 1 else {}
        config = config if isinstance(config, dict) else {}
        if isinstance(kind, list):
            return cls(name, required, "COMBO", tuple(kind), config, legacy_combo=True)
        if kind == "COMBO":
            return cls(name, required, "COMBO", tuple(config.get("options") or ()), config)
        return cls(name, required, str(kind), None, config)

    @cached_property
    def marks_a_file(self) -> bool:
        """ComfyUI marks a file loader's input with an `*_upload` flag or an `image_folder`."""
        return "image_folder" in self.config or any(
            key.endswith("_upload") and flag for key, flag in self.config.items())

    @property
    def takes_literal(self) -> bool:
        return self.type in PRIMITIVE_TYPES or self.type == "COMBO"

    @property
    def link_type(self) -> Any:
        """The type a link into this input must carry (a legacy combo's is its option list)."""
        return list(self.options or ()) if self.legacy_combo else self.type

    @property
    def lists_model_files(self) -> bool:
        return self.type == "COMBO" and self.name.endswith("_name") and (
            not self.options or any(str(option).endswith(MODEL_EXTENSIONS)
                                    for option in self.options))


def _in_declared_order(specs: Mapping[str, Any], order: Any) -> list[str]:
    """Input names in ComfyUI's `input_order` (the catalog is stored with sorted keys, and
    the editor lays widgets out in this order), then any it does not list."""
    listed = [name for name in order if name in specs] if isinstance(order, list) else []
    return listed + [name for name in specs if name not in listed]


@dataclass(frozen=True)
class NodeSpec:
    class_type: str
    display_name: str
    python_module: str
    output_node: bool
    outputs: tuple[Any, ...]
    inputs: Mapping[str, InputSpec]
    # The python_module of each catalog's copy, once merged (empty: only python_module).
    modules: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, class_type: str, raw: Mapping[str, Any]) -> NodeSpec:
        declared = raw.get("input") or {}
        order = raw.get("input_order")
        order = order if isinstance(order, Mapping) else {}
        inputs = {}
        for category in ("required", "optional"):
            specs = declared.get(category) or {}
            for name in _in_declared_order(specs, order.get(category)):
                inputs[name] = InputSpec.parse(name, specs[name], required=category == "required")
        return cls(
            class_type=class_type,
            display_name=str(raw.get("display_name") or class_type),
            python_module=str(raw.get("python_module") or "nodes"),
            output_node=bool(raw.get("output_node")),
            outputs=tuple(raw.get("output") or ()),
            inputs=inputs,
        )

    @property
    def all_modules(self) -> frozenset[str]:
        return self.modules or frozenset({self.python_module})

    @property
    def is_core(self) -> bool:
        """Whether every worker's copy of the class is a core node."""
        return all(_is_core(module) for module in self.all_modules)

    @property
    def node_pack(self) -> str | None:
        """The custom node pack it comes from (`custom_nodes.<pack>…`), None for core nodes
        (the first catalog's copy; `node_packs` has every copy's)."""
        return _pack_of(self.python_module)

    @property
    def node_packs(self) -> frozenset[str | None]:
        """The packs of the copies that are not core (None for a module outside
        `custom_nodes.<pack>`, which no pack vouches for)."""
        return frozenset(_pack_of(module) for module in self.all_modules
                         if not _is_core(module))


def _is_core(module: str) -> bool:
    return module.split(".")[0] in ("nodes", "comfy_extras", "comfy_api_nodes")


def _pack_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "custom_nodes" and len(parts) > 1 else None


def _merge_node(first: NodeSpec, other: NodeSpec) -> NodeSpec:
    inputs = dict(first.inputs)
    for name, spec in other.inputs.items():
        mine = inputs.get(name)
        if mine is None:
            inputs[name] = spec
        elif mine.options is not None and spec.options is not None:
            union = tuple(dict.fromkeys((*mine.options, *spec.options)))
            inputs[name] = replace(mine, options=union)
    return replace(first, inputs=inputs, modules=first.all_modules | other.all_modules)


def _without(spec: InputSpec, hidden: frozenset[str]) -> InputSpec:
    if not spec.options or not any(option in hidden for option in spec.options):
        return spec
    return replace(spec, options=tuple(o for o in spec.options if o not in hidden))


class NodeCatalog:
    def __init__(self, nodes: Mapping[str, NodeSpec]) -> None:
        self.nodes = dict(nodes)
        self._producers: dict[str, list[NodeSpec]] = {}

    @classmethod
    def from_object_info(cls, object_info: Mapping[str, Any]) -> NodeCatalog:
        return cls({name: NodeSpec.parse(name, raw) for name, raw in object_info.items()
                    if isinstance(raw, Mapping)})

    @classmethod
    def merged(cls, catalogs: Iterable[NodeCatalog]) -> NodeCatalog:
        nodes: dict[str, NodeSpec] = {}
        for catalog in catalogs:
            for name, spec in catalog.nodes.items():
                nodes[name] = _merge_node(nodes[name], spec) if name in nodes else spec
        return cls(nodes)

    def get(self, class_type: str) -> NodeSpec | None:
        return self.nodes.get(class_type)

    def without_options(self, hidden: frozenset[str]) -> NodeCatalog:
        """This catalog with the options in `hidden` left out of every input: files a key
        may not use are then neither accepted nor offered in its hints."""
        if not hidden:
            return self
        nodes = {}
        for class_type, spec in self.nodes.items():
            inputs = {name: _without(item, hidden) for name, item in spec.inputs.items()}
            changed = any(inputs[name] is not item for name, item in spec.inputs.items())
            nodes[class_type] = replace(spec, inputs=inputs) if changed else spec
        return NodeCatalog(nodes)

    def similar(self, class_type: str, limit: int = 3) -> list[str]:
        return difflib.get_close_matches(class_type, list(self.nodes), n=limit, cutoff=0.8)

    def producers(self, wanted: Any) -> list[NodeSpec]:
        """Core nodes with an output that can feed `wanted`, the likeliest first."""
        key = repr(wanted)
        if key not in self._producers:
            found = [spec for spec in self.nodes.values() if spec.is_core and any(
                output != "*" and types_compatible(output, wanted) for output in spec.outputs)]
            preferred = _PREFERRED_PRODUCERS.get(wanted) if isinstance(wanted, str) else None
            found.sort(key=lambda spec: (spec.class_type != preferred,
                                         sum(i.required and not i.takes_literal
                                             for i in spec.inputs.values()),
                                         spec.class_type))
            self._producers[key] = found
        return self._producers[key]
