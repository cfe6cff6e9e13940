"""Random ComfyUI graphs from weight-free nodes, valid or broken in one known way.

A graph is built front to back: each node's link inputs take an earlier node's output of a
compatible type, and its literals a value in a small, fast range. Then, maybe, one mutation
breaks it. The mutation's kind says whether ComfyUI may safely see the graph: dangling links
and nodes without inputs stop ComfyUI 0.3.75's prompt worker, so those are never sent to it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from comfy_serverless.validation.catalog import InputSpec, NodeCatalog, types_compatible

VOCABULARY = (
    "EmptyImage", "SolidMask", "EmptyLatentImage", "ImageInvert", "ImageBlur", "ImageSharpen",
    "ImageScale", "ImageScaleBy", "ImageFlip", "MaskToImage", "ImageToMask", "InvertMask",
    "ImageCompositeMasked", "LatentUpscale", "LatentUpscaleBy", "LatentFlip", "ImageBlend",
    "ImageQuantize", "ImagePadForOutpaint", "ImageCrop", "RepeatImageBatch", "ImageBatch",
    "GrowMask", "ThresholdMask", "LatentBatch", "ImageRotate", "PreviewImage", "SaveImage",
)
Graph = dict[str, dict[str, Any]]

# Small ranges keep every generated job fast on a CPU: (low, high) per input name.
_FAST_RANGES: dict[str, tuple[float, float]] = {
    "width": (16, 48), "height": (16, 48), "batch_size": (1, 2), "amount": (1, 2),
    "expand": (-3, 3), "left": (0, 8), "top": (0, 8), "right": (0, 8), "bottom": (0, 8),
    "feathering": (0, 8), "x": (0, 16), "y": (0, 16), "colors": (2, 64), "blur_radius": (1, 5),
    "sharpen_radius": (1, 3), "scale_by": (0.25, 1.5), "color": (0, 0xFFFFFF),
}
SOURCES = ("EmptyImage", "SolidMask", "EmptyLatentImage")
OUTPUTS = ("PreviewImage", "SaveImage")

# Mutations, and whether ComfyUI may be sent the broken graph.
SAFE_MUTATIONS = (
    "drop_required", "out_of_range", "bad_option", "wrong_literal_type", "type_mismatch",
    "bad_output_index", "fractional_int", "boolean_for_number", "no_output",
)
UNSAFE_MUTATIONS = ("dangling_link", "no_inputs")
# Mutations our documented policy refuses though ComfyUI would coerce and run them.
POLICY_MUTATIONS = frozenset({"fractional_int", "boolean_for_number"})


@dataclass
class GeneratedGraph:
    graph: dict[str, dict[str, Any]]
    mutation: str | None

    @property
    def safe_for_comfyui(self) -> bool:
        return self.mutation not in UNSAFE_MUTATIONS


class GraphGenerator:
    def __init__(self, catalog: NodeCatalog) -> None:
        self.specs = {name: spec for name in VOCABULARY if (spec := catalog.get(name))}

    def generate(self, rng: random.Random, *, mutate: bool | None = None) -> GeneratedGraph:
        graph: dict[str, dict[str, Any]] = {}
        for _ in range(rng.randint(1, 5)):
            self._add(rng, graph, rng.choice([n for n in self.specs if n not in OUTPUTS]))
        if not any("IMAGE" in self.specs[n["class_type"]].outputs for n in graph.values()):
            self._add(rng, graph, "EmptyImage")
        self._add(rng, graph, rng.choice(OUTPUTS))
        should_mutate = rng.random() < 0.6 if mutate is None else mutate
        mutation = self._mutate(rng, graph) if should_mutate else None
        return GeneratedGraph(graph, mutation)

    # ------------------------------------------------------------------ building

    def _add(self, rng: random.Random, graph: dict[str, dict[str, Any]], class_type: str) -> None:
        spec = self.specs[class_type]
        inputs: dict[str, Any] = {}
        for name, input_spec in spec.inputs.items():
            if not input_spec.required and rng.random() < 0.7:
                continue
            value = self._value(rng, graph, input_spec)
            if value is None:
                return self._add_source_for(rng, graph, class_type, input_spec)
            inputs[name] = value
        graph[str(len(graph) + 1)] = {"class_type": class_type, "inputs": inputs}
        return None

    def _add_source_for(self, rng: random.Random, graph: dict[str, dict[str, Any]],
                        class_type: str, wanted: InputSpec) -> None:
        source = {"IMAGE": "EmptyImage", "MASK": "SolidMask", "LATENT": "EmptyLatentImage"}
        if wanted.type in source:
            self._add(rng, graph, source[wanted.type])
            self._add(rng, graph, class_type)

    def _value(self, rng: random.Random, graph: dict[str, dict[str, Any]], spec: InputSpec
               ) -> Any:
        if spec.takes_literal:
            return self._literal(rng, spec)
        producers = [(node_id, index) for node_id, node in graph.items()
                     for index, output in enumerate(self.specs[node["class_type"]].outputs)
                     if output == spec.type]
        if not producers:
            return None
        node_id, index = rng.choice(producers)
        return [node_id, index]

    def _literal(self, rng: random.Random, spec: InputSpec) -> Any:
        if spec.type == "COMBO":
            return rng.choice(spec.options or ("",))
        if spec.type == "BOOLEAN":
            return rng.random() < 0.5
        if spec.type == "STRING":
            return "fuzz"
        low, high = _FAST_RANGES.get(spec.name, (spec.config.get("min", 0),
                                                 spec.config.get("max", 1)))
        low = max(low, spec.config.get("min", low))
        high = min(high, spec.config.get("max", high))
        if spec.type == "INT":
            return rng.randint(int(low), int(high))
        return round(rng.uniform(float(low), float(high)), 3)

    # ------------------------------------------------------------------ breaking

    def _mutate(self, rng: random.Random, graph: dict[str, dict[str, Any]]) -> str:
        kind = rng.choice(SAFE_MUTATIONS + UNSAFE_MUTATIONS)
        node_id = rng.choice(sorted(_upstream_of_outputs(graph)))
        if getattr(self, f"_mutation_{kind}")(rng, graph, node_id):
            return kind
        self._mutation_no_output(rng, graph, node_id)  # always applies
        return "no_output"

    def _present(self, graph: dict[str, dict[str, Any]], node_id: str, *types: str
                 ) -> list[InputSpec]:
        """The inputs of the node that are set and whose type is one of `types` (any if none),
        or, with "LINK", the inputs that take a link."""
        node = graph[node_id]
        specs = self.specs[node["class_type"]].inputs.values()
        return [i for i in specs if i.name in node["inputs"] and (
            not types or i.type in types or ("LINK" in types and not i.takes_literal))]

    def _mutation_drop_required(self, rng: random.Random, graph: Graph, node_id: str) -> bool:
        required = [i.name for i in self._present(graph, node_id) if i.required]
        if required:
            del graph[node_id]["inputs"][rng.choice(required)]
        return bool(required)

    def _mutation_out_of_range(self, rng: random.Random, graph: Graph, node_id: str) -> bool:
        bounded = [i for i in self._present(graph, node_id, "INT", "FLOAT") if "max" in i.config]
        if bounded:
            target = rng.choice(bounded)
            step = 1 if target.type == "INT" else 0.5
            graph[node_id]["inputs"][target.name] = target.config["max"] + step
        return bool(bounded)

    def _mutation_bad_option(self, rng: random.Random, graph: Graph, node_id: str) -> bool:
        return self._set_one(rng, graph, node_id, ("COMBO",), "no-such-option")

    def _mutation_wrong_literal_type(self, rng: random.Random, graph: Graph, node_id: str
                                     ) -> bool:
        return self._set_one(rng, graph, node_id, ("INT", "FLOAT"), "abc")

    def _mutation_fractional_int(self, rng: random.Random, graph: Graph, node_id: str) -> bool:
        return self._set_one(rng, graph, node_id, ("INT",), 1.5)

    def _mutation_boolean_for_number(self, rng: random.Random, graph: Graph, node_id: str
                                     ) -> bool:
        return self._set_one(rng, graph, node_id, ("INT", "FLOAT"), True)

    def _set_one(self, rng: random.Random, graph: Graph, node_id: str, types: tuple[str, ...],
                 value: Any) -> bool:
        candidates = self._present(graph, node_id, *types)
        if candidates:
            graph[node_id]["inputs"][rng.choice(candidates).name] = value
        return bool(candidates)

    def _mutation_type_mismatch(self, rng: random.Random, graph: Graph, node_id: str) -> bool:
        return self._mismatch(graph, node_id, self._present(graph, node_id, "LINK"))

    def _mutation_bad_output_index(self, rng: random.Random, graph: Graph, node_id: str
                                   ) -> bool:
        links = self._present(graph, node_id, "LINK")
        if links:
            link = graph[node_id]["inputs"][rng.choice(links).name]
            link[1] = len(self.specs[graph[link[0]]["class_type"]].outputs)
        return bool(links)

    def _mutation_no_output(self, rng: random.Random, graph: Graph, node_id: str) -> bool:
        for output_id in [i for i, n in graph.items() if n["class_type"] in OUTPUTS]:
            del graph[output_id]
        return True

    def _mutation_dangling_link(self, rng: random.Random, graph: Graph, node_id: str) -> bool:
        names = [i.name for i in self._present(graph, node_id, "LINK")] + ["extra"]
        graph[node_id]["inputs"][rng.choice(names)] = ["999", 0]
        return True

    def _mutation_no_inputs(self, rng: random.Random, graph: Graph, node_id: str) -> bool:
        graph[str(len(graph) + 100)] = {"class_type": "EmptyImage"}
        return True

    def _mismatch(self, graph: dict[str, dict[str, Any]], node_id: str,
                  links: list[InputSpec]) -> bool:
        """Link an input to an output of the wrong type (never from downstream: no cycle)."""
        downstream = _downstream(graph, node_id)
        for target in links:
            for other_id, other in graph.items():
                if other_id in downstream:
                    continue
                for index, output in enumerate(self.specs[other["class_type"]].outputs):
                    if not types_compatible(output, target.type):
                        graph[node_id]["inputs"][target.name] = [other_id, index]
                        return True
        return False


def _downstream(graph: dict[str, dict[str, Any]], node_id: str) -> set[str]:
    """`node_id` and every node that depends on it."""
    found: set[str] = set()
    pending = [node_id]
    while pending:
        current = pending.pop()
        if current in found:
            continue
        found.add(current)
        pending += [i for i, n in graph.items() if any(
            isinstance(v, list) and v[:1] == [current] for v in n["inputs"].values())]
    return found


def _upstream_of_outputs(graph: dict[str, dict[str, Any]]) -> set[str]:
    """The nodes ComfyUI would validate: the outputs and everything they depend on."""
    found: set[str] = set()
    pending = [i for i, n in graph.items() if n["class_type"] in OUTPUTS]
    while pending:
        current = pending.pop()
        if current in found or current not in graph:
            continue
        found.add(current)
        pending += [str(v[0]) for v in graph[current]["inputs"].values() if isinstance(v, list)]
    return found
