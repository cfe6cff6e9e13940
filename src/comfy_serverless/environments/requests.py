"""An environment as a submit asks for it: `name`, or `name@<hex>` to pin the start of its
hash (the sha256 of the manifest, as the installer records it). The name takes the shape
of a manifest's name (letters, digits, `.`, `_`, `-`; a letter or digit first; at most 64);
a hash prefix is 6 to 64 hexadecimal digits, compared lowercase."""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["ENVIRONMENT_PATTERN", "NAME_PATTERN", "EnvironmentRequest", "MalformedEnvironment",
           "parse_environment"]

NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}"
HASH_PREFIX_PATTERN = r"[0-9A-Fa-f]{6,64}"
ENVIRONMENT_PATTERN = f"^{NAME_PATTERN}(@{HASH_PREFIX_PATTERN})?$"
_ENVIRONMENT = re.compile(f"({NAME_PATTERN})(?:@({HASH_PREFIX_PATTERN}))?")


class MalformedEnvironment(ValueError):
    """Not `name` nor `name@<hex>`; its message says what the shape is."""


@dataclass(frozen=True)
class EnvironmentRequest:
    name: str
    hash_prefix: str | None = None

    def __str__(self) -> str:
        return self.name if self.hash_prefix is None else f"{self.name}@{self.hash_prefix}"

    def matches(self, name: str | None, digest: str | None) -> bool:
        """Whether a worker running `name` at hash `digest` may take a job asking for it."""
        if name != self.name:
            return False
        return self.hash_prefix is None or (digest or "").lower().startswith(self.hash_prefix)


def parse_environment(text: str) -> EnvironmentRequest:
    found = _ENVIRONMENT.fullmatch(text)
    if found is None:
        raise MalformedEnvironment(
            "must be an environment's name (letters, digits, '.', '_' or '-', starting with a "
            "letter or digit, at most 64), optionally followed by '@' and the first 6 to 64 "
            "hexadecimal digits of its hash")
    name, prefix = found.groups()
    return EnvironmentRequest(name, None if prefix is None else prefix.lower())
