"""`input_overrides`: values that replace inputs of the submitted graph.

A key means, in this order:
1. `"<node_id>.<input>"`: that input of that node, exactly.
2. An alias, on the nodes that feed a sampler:
   - `prompt` / `negative_prompt`: the `text` of the node wired to a sampler's
     `positive` / `negative`;
   - `seed` (also `noise_seed`), `steps`, `cfg`, `sampler_name`, `scheduler`, `denoise`:
     those inputs on every sampler node, given or not, when its class has them (per the
     catalog);
   - `width`, `height`, `batch_size`: on latent-image nodes, the same way.
3. Any other key: every literal (unlinked) input of that exact name.

A key that matches nothing is a finding, reported with the workflow's own findings (its
suggestion never repeats the key). A link given as a value gets the structural checks of
parse_workflow: its node id becomes text, and a link to no node or one that closes a cycle is
a finding.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from comfy_serverless.validation.catalog import NodeCatalog
from comfy_serverless.validation.findings import (
    SUGGESTED,
    ValidationProblem,
    nearest,
    workflow_invalid,
)
from comfy_serverless.validation.workflow import Graph, copy_graph, cycle_problems, is_link

__all__ = ["apply_overrides", "overlay_overrides"]

_SAMPLER_ALIASES = ("seed", "noise_seed", "steps", "cfg", "sampler_name", "scheduler", "denoise")
_LATENT_ALIASES = ("width", "height", "batch_size")
_PROMPT_ALIASES = {"prompt": "positive", "negative_prompt": "negative"}
_SEED_INPUTS = ("seed", "noise_seed")


def _is_sampler(node: dict[str, Any]) -> bool:
    return "Sampler" in str(node["class_type"])


def _is_latent_image(node: dict[str, Any]) -> bool:
    class_type = str(node["class_type"])
    return "Latent" in class_type and any(name in node["inputs"] for name in _LATENT_ALIASES)


def _targets(graph: Graph, key: str, catalog: NodeCatalog | None
             ) -> Iterator[tuple[str, str]]:
    """The (node_id, input) pairs that `key` sets."""
    node_id, dot, input_name = key.partition(".")
    if dot and node_id in graph:
        yield node_id, input_name
        return
    if key in _PROMPT_ALIASES:
        yield from _prompt_targets(graph, _PROMPT_ALIASES[key])
    elif key in _SAMPLER_ALIASES:
        names = _SEED_INPUTS if key in _SEED_INPUTS else (key,)
        yield from _named_inputs(graph, names, _is_sampler, catalog)
    elif key in _LATENT_ALIASES:
        yield from _named_inputs(graph, (key,), _is_latent_image, catalog)
    else:
        yield from _named_inputs(graph, (key,), lambda node: True, None)


def _prompt_targets(graph: Graph, socket: str) -> Iterator[tuple[str, str]]:
    for node in graph.values():
        link: Any = node["inputs"].get(socket) if _is_sampler(node) else None
        if not is_link(link):
            continue
        upstream = str(link[0])
        if "text" in graph.get(upstream, {}).get("inputs", {}):
            yield upstream, "text"


def _named_inputs(graph: Graph, names: tuple[str, ...], accept: Any,
                  catalog: NodeCatalog | None) -> Iterator[tuple[str, str]]:
    """Unlinked inputs called one of `names` on the nodes `accept` takes; with a catalog,
    also those the node's class declares and the workflow leaves out."""
    for node_id, node in graph.items():
        if not accept(node):
            continue
        spec = catalog.get(node["class_type"]) if catalog is not None else None
        for name in names:
            if name in node["inputs"]:
                if not is_link(node["inputs"][name]):
                    yield node_id, name
            elif spec is not None and name in spec.inputs and spec.inputs[name].takes_literal:
                yield node_id, name


def _known_keys(graph: Graph) -> list[str]:
    """Every key that would match something: built once per request."""
    known = {f"{node_id}.{name}" for node_id, node in graph.items() for name in node["inputs"]}
    known |= {name for node in graph.values() for name in node["inputs"]}
    known |= set(_PROMPT_ALIASES) | set(_SAMPLER_ALIASES) | set(_LATENT_ALIASES)
    return sorted(known)


def _suggest(known: list[str] | None, key: str) -> str:
    """A hint for a key that matches nothing; `known` is None once SUGGESTED keys have had
    a "did you mean" (the work is bounded)."""
    if key in _PROMPT_ALIASES:
        return (f"'{key}' sets the text of the node wired to a sampler's "
                f"'{_PROMPT_ALIASES[key]}', and no sampler here has one: use '<node_id>.text'")
    close = nearest(key, (name for name in known if name != key), cutoff=0.6) if known else []
    if close:
        return "Did you mean " + " or ".join(repr(name) for name in close) + "?"
    if key in _SAMPLER_ALIASES or key in _LATENT_ALIASES:
        return f"No node here takes '{key}': use '<node_id>.{key}'"
    return "Use '<node_id>.<input>' or an alias such as 'prompt', 'seed' or 'steps'"


def overlay_overrides(graph: Graph, overrides: dict[str, Any],
                      catalog: NodeCatalog | None = None, *, max_keys: int | None = None
                      ) -> tuple[Graph, list[ValidationProblem]]:
    """A copy of `graph` with the overrides applied, and a problem for each key that
    matches nothing (to be reported beside the workflow's own). More than `max_keys` keys
    are refused at once: each key is looked for in the whole graph."""
    if not overrides:
        return graph, []
    if max_keys is not None and len(overrides) > max_keys:
        raise workflow_invalid([ValidationProblem(
            None, f"input_overrides has {len(overrides)} keys, more than max_input_overrides "
                  f"{max_keys}", "Set fewer inputs, or change the workflow itself")])
    result = copy_graph(graph)
    problems = []
    linked = False
    known: list[str] | None = None
    unmatched = 0
    for key, value in overrides.items():
        targets = list(_targets(result, key, catalog))
        if not targets:
            unmatched += 1
            if known is None and unmatched <= SUGGESTED:
                known = _known_keys(result)
            problems.append(ValidationProblem(
                None, f"input_overrides key '{key}' matches no input of the workflow",
                _suggest(known if unmatched <= SUGGESTED else None, key)))
        if targets and is_link(value):
            value, linked = [str(value[0]), value[1]], True
            problems += _dangling(result, key, value)
        for node_id, input_name in targets:
            result[node_id]["inputs"][input_name] = value
    if linked and not cycle_problems(graph):
        problems += cycle_problems(result)  # the overrides made it
    return result, problems


def _dangling(graph: Graph, key: str, link: list[Any]) -> list[ValidationProblem]:
    """The structural check of parse_workflow, for a link that an override gives."""
    if link[0] in graph:
        return []
    return [ValidationProblem(
        None, f"input_overrides key '{key}' links to node '{link[0]}', which does not exist",
        f"Link to an existing node id: {', '.join(sorted(graph)[:10])}")]


def apply_overrides(graph: Graph, overrides: dict[str, Any],
                    catalog: NodeCatalog | None = None) -> Graph:
    """overlay_overrides, refusing at once any key that matches nothing."""
    result, problems = overlay_overrides(graph, overrides, catalog)
    if problems:
        raise workflow_invalid(problems, "input_overrides do not match the workflow")
    return result
