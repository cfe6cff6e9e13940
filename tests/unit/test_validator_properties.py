"""Property-based: whatever arrives, the validator answers with a verdict, never a crash."""

from __future__ import annotations

import random
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from comfy_serverless.errors import ApiError
from comfy_serverless.validation.rules import ValidationRules
from comfy_serverless.validation.validator import WorkflowValidator
from comfy_serverless.validation.workflow import parse_workflow
from tests.graphgen import GraphGenerator
from tests.unit.test_validator import CATALOG

GENERATOR = GraphGenerator(CATALOG)
VALIDATOR = WorkflowValidator(ValidationRules(), CATALOG)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=4),
    max_leaves=20,
)


def _verdict(raw: Any) -> str:
    refusal: ApiError | None = None
    try:
        parsed = parse_workflow(raw)
        VALIDATOR.validate(parsed.graph, parsed.problems)
    except ApiError as refused:
        refusal = refused
    if refusal is None:
        return "accepted"
    details = refusal.body()["details"]
    assert refusal.status_code in (400, 422)
    assert details["validation_errors"] or details["invalid_connections"]
    return "refused"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.randoms(use_true_random=False))
def test_generated_graphs_get_a_verdict_and_mutations_are_caught(rng: random.Random) -> None:
    generated = GENERATOR.generate(rng)
    verdict = _verdict({"nodes": generated.graph})
    if generated.mutation is None:
        assert verdict == "accepted", generated.graph
    elif generated.mutation not in ("no_output",):
        assert verdict == "refused", (generated.mutation, generated.graph)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(max_size=5), json_values, max_size=6))
def test_arbitrary_json_never_crashes_the_validator(raw: dict[str, Any]) -> None:
    _verdict(raw)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(
    st.sampled_from(["1", "2", "3", "4"]),
    st.fixed_dictionaries({
        "class_type": st.sampled_from(["EmptyImage", "ImageInvert", "SaveImage", "KSampler",
                                       "Nope"]),
        "inputs": st.dictionaries(
            st.sampled_from(["image", "images", "width", "height", "color", "model", "x"]),
            st.one_of(json_values, st.tuples(st.sampled_from(["1", "2", "9"]),
                                             st.integers(-1, 3)).map(list))),
    })))
def test_near_miss_graphs_never_crash_the_validator(raw: dict[str, Any]) -> None:
    _verdict(raw)
