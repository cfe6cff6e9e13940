"""Literal input values: the spec's input limits, and ComfyUI's types made exact.

ComfyUI coerces a literal with `int()`, `float()`, `str()` or `bool()` before it checks
`min`/`max`. We normalise the same way where the result is what the sender meant, and refuse
where ComfyUI's coercion would silently change the meaning (documented policy):

| input   | normalised                                   | refused                               |
|---------|----------------------------------------------|---------------------------------------|
| INT     | 7.0 → 7, "7" → 7                             | 7.5 (ComfyUI truncates), true/false   |
| FLOAT   | 7 → 7.0, "0.5" → 0.5                         | true/false, NaN, ±infinity            |
| STRING  | 7 → "7", 0.5 → "0.5"                         | true/false, objects                   |
| BOOLEAN | 0/1 → false/true, "true"/"false" → bool      | anything else (1)                     |
| COMBO   | —                                            | a value not among the options         |

(1) ComfyUI's own `bool("false")` is true: a string is never passed through as is.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections import deque
from collections.abc import Iterator
from typing import Any

from comfy_serverless.validation.catalog import InputSpec
from comfy_serverless.validation.rules import ValidationRules

__all__ = [
    "IMAGE_HEAD_BYTES",
    "Refused",
    "coerce_literal",
    "numeric_bound",
    "limit_problems",
    "nesting_exceeds",
    "range_problem",
    "sniff_image_format",
    "walk_nested",
]

_CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_URL = re.compile(r"^\s*([a-zA-Z][a-zA-Z0-9+.\-]*)://")
_DATA_URI = re.compile(r"^data:([\w/+.\-]+)?(;base64)?,", re.IGNORECASE)
_IMAGE_MAGIC = {b"\x89PNG\r\n\x1a\n": "png", b"\xff\xd8\xff": "jpg"}
# Bytes an image must start with to be recognised (a WebP is RIFF....WEBP).
IMAGE_HEAD_BYTES = 12


def sniff_image_format(head: bytes) -> str | None:
    """png, jpg or webp, recognised by the magic bytes at the start of a file; else None."""
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    return next((fmt for magic, fmt in _IMAGE_MAGIC.items() if head.startswith(magic)), None)


class Refused(ValueError):
    """A literal that cannot be given to this input; the message says why."""


def numeric_bound(name: str, rules: ValidationRules) -> float | None:
    """The largest magnitude a number may have here; None when exempt (documented policy).

    max_numeric_value applies to every number except the inputs named in
    `numeric_limit_exemptions`: by default seeds (`seed`, `noise_seed`, whose range reaches
    2^64) and `color` (0xRRGGBB, up to 16,777,215). Those stay bounded by the node's own range.
    """
    return None if name in rules.numeric_limit_exemptions else rules.max_numeric_value


def walk_nested(value: Any) -> Iterator[tuple[Any, int]]:
    """Every value nested in `value` (itself included) with its depth, breadth first, with
    a queue of its own: a nesting of any depth never recurses."""
    pending: deque[tuple[Any, int]] = deque([(value, 0)])
    while pending:
        item, depth = pending.popleft()
        yield item, depth
        if isinstance(item, dict):
            pending.extend((nested, depth + 1) for nested in item.values())
        elif isinstance(item, list):
            pending.extend((nested, depth + 1) for nested in item)


def nesting_exceeds(value: Any, max_depth: int) -> bool:
    """True when lists and objects nest more than `max_depth` levels deep in `value`."""
    return any(depth >= max_depth and isinstance(item, dict | list)
               for item, depth in walk_nested(value))


def limit_problems(name: str, value: Any, rules: ValidationRules, bound: float | None
                   ) -> list[str]:
    """The spec's input limits (§5.1) for one literal and every value nested in it; []
    when it passes, else one problem: the first, with a count of the others. Nesting deeper
    than max_input_depth is refused."""
    if not isinstance(value, dict | list):
        return _scalar_problems(name, value, rules, bound)
    if nesting_exceeds(value, rules.max_input_depth):
        return [f"Input '{name}' nests values more than max_input_depth "
                f"{rules.max_input_depth} levels deep"]
    problems = (problem for item, _ in walk_nested(value)
                for problem in _scalar_problems(name, item, rules, bound))
    first = next(problems, None)
    if first is None:
        return []
    more = sum(1 for _ in problems)
    return [f"{first} (and {more} more in this input)" if more else first]


def _scalar_problems(name: str, value: Any, rules: ValidationRules, bound: float | None
                     ) -> list[str]:
    if isinstance(value, bool):
        return []
    if isinstance(value, int | float):
        if bound is not None and abs(value) > bound:
            return [f"Input '{name}' is {value}, beyond max_numeric_value "
                    f"{rules.max_numeric_value:g}"]
        return []
    if isinstance(value, str):
        return _string_problems(name, value, rules)
    return []


def _string_problems(name: str, value: str, rules: ValidationRules) -> list[str]:
    # An inline image is bounded by max_image_bytes, not by max_string_length.
    if data_uri := _DATA_URI.match(value):
        return _image_problems(name, value[data_uri.end():], bool(data_uri.group(2)), rules)
    if len(value) > rules.max_string_length:
        return [f"Input '{name}' has {len(value)} characters, more than max_string_length "
                f"{rules.max_string_length}"]
    if _CONTROL_CHARACTERS.search(value):
        return [f"Input '{name}' contains control characters"]
    url = _URL.match(value)
    if url and url.group(1).lower() not in rules.allowed_url_schemes:
        return [f"Input '{name}' is a {url.group(1)}:// URL; allowed schemes: "
                f"{', '.join(rules.allowed_url_schemes)}"]
    return []


def _image_problems(name: str, payload: str, is_base64: bool, rules: ValidationRules
                    ) -> list[str]:
    if not is_base64:
        return [f"Input '{name}' is a data URI that is not base64"]
    if len(payload) * 3 // 4 > rules.max_image_bytes:
        return [f"Input '{name}' holds an image larger than {rules.max_image_bytes} bytes"]
    try:
        head = base64.b64decode(payload[:64] + "=" * (-len(payload[:64]) % 4))
    except (binascii.Error, ValueError):
        return [f"Input '{name}' is not valid base64"]
    kind = sniff_image_format(head)
    if kind is None or kind not in rules.supported_image_formats:
        return [f"Input '{name}' is not an image in a supported format "
                f"({', '.join(rules.supported_image_formats)})"]
    return []


def coerce_literal(spec: InputSpec, value: Any) -> Any:
    """The value ComfyUI should receive for `spec`, or Refused."""
    if isinstance(value, dict) and "__value__" in value:
        value = value["__value__"]
    match spec.type:
        case "INT":
            return _to_int(value)
        case "FLOAT":
            return _to_float(value)
        case "STRING":
            if isinstance(value, bool) or not isinstance(value, str | int | float):
                raise Refused(f"expected text, got {type(value).__name__}")
            return value if isinstance(value, str) else str(value)
        case "BOOLEAN":
            return _to_bool(value)
    return value


def _to_int(value: Any) -> int:
    if isinstance(value, bool):
        raise Refused("expected an integer, got a boolean")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise Refused(f"expected an integer, got {value!r}")


def _to_float(value: Any) -> float:
    if isinstance(value, bool):
        raise Refused("expected a number, got a boolean")
    try:
        number = float(value) if isinstance(value, int | float | str) else math.nan
    except ValueError:
        number = math.nan
    if not math.isfinite(number):
        raise Refused(f"expected a finite number, got {value!r}")
    return number


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise Refused(f"expected true or false, got {value!r}")


def range_problem(spec: InputSpec, value: Any) -> str | None:
    """ComfyUI's own min/max check, on the normalised value."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return None
    low, high = spec.config.get("min"), spec.config.get("max")
    if isinstance(low, int | float) and value < low:
        return f"Value {value} for '{spec.name}' is smaller than its min of {low}"
    if isinstance(high, int | float) and value > high:
        return f"Value {value} for '{spec.name}' is bigger than its max of {high}"
    return None
