"""Where one execution's files go: `output_config.storage` resolved at submit time.

The bucket and `path` template come from the request or from the deployment's defaults;
`{execution_id}` is filled in. The resolved destination is kept with the execution, so the
worker that stores its outputs needs none of the API's settings.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from comfy_serverless.storage.base import StoredLocation
from comfy_serverless.store.options import StoredDestination

__all__ = [
    "Destination",
    "DestinationInvalid",
    "DestinationUnavailable",
    "StorageDefaults",
    "resolve_destination",
    "safe_subfolder",
]

_PLACEHOLDER = "{execution_id}"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


class DestinationInvalid(ValueError):
    """A storage request this deployment cannot honour; `field` names the culprit."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


class DestinationUnavailable(DestinationInvalid):
    """A valid storage request for a provider this deployment has not configured."""

    def __init__(self, message: str, field: str, supported: tuple[str, ...] = ("local",)
                 ) -> None:
        super().__init__(message, field)
        self.supported = supported


@dataclass(frozen=True)
class StorageDefaults:
    path_template: str = "outputs/{execution_id}/"
    s3_configured: bool = False
    s3_bucket: str | None = None
    s3_allowed_buckets: tuple[str, ...] = ()
    retention_days: int | None = None
    s3_only: bool = False  # a fleet without a shared folder: every output on S3


@dataclass(frozen=True)
class Destination:
    provider: str
    bucket: str | None
    prefix: str
    public_access: bool = False
    retention_days: int | None = None

    def location(self, filename: str, *, intermediate: bool = False, subfolder: str = ""
                 ) -> StoredLocation:
        """Where one file goes: ComfyUI's `subfolder` (from a `filename_prefix` such as
        `a/x`) is kept, so that `a/x_00001_.png` and `b/x_00001_.png` never collide."""
        folder = ("intermediate/" if intermediate else "") + safe_subfolder(subfolder)
        return StoredLocation(self.provider, f"{self.prefix}{folder}{filename}", self.bucket,
                              self.public_access)

    def as_stored(self) -> StoredDestination:
        """As the execution's options keep it."""
        return StoredDestination(self.provider, self.bucket, self.prefix, self.public_access,
                                 self.retention_days)

    @classmethod
    def from_stored(cls, execution_id: str, stored: StoredDestination) -> Destination:
        """The destination kept with an execution (or the default, for older executions)."""
        if stored.prefix is None:
            prefix = StorageDefaults.path_template.format(execution_id=execution_id)
            return cls("local", None, prefix)
        return cls(stored.provider, stored.bucket, stored.prefix, stored.public_access,
                   stored.retention_days)


def safe_subfolder(subfolder: str) -> str:
    """A relative folder ending in `/` ("" for none): `.`, `..` and empty parts dropped, and
    any character other than letters, digits, `.`, `_` and `-` replaced by `_`."""
    parts = [_UNSAFE.sub("_", part) for part in re.split(r"[/\\]", subfolder)
             if part not in ("", ".", "..")]
    return "".join(f"{part}/" for part in parts)


def resolve_destination(requested: dict[str, Any], execution_id: str,
                        defaults: StorageDefaults) -> Destination:
    """`output_config.storage` as asked for, checked and completed; DestinationInvalid if not."""
    provider = str(requested.get("provider") or ("s3" if defaults.s3_only else "local"))
    bucket = _bucket(provider, requested.get("bucket"), defaults)
    retention = requested.get("retention_days") or defaults.retention_days
    return Destination(provider, bucket, _prefix(requested.get("path"), execution_id, defaults),
                       bool(requested.get("public_access")), retention)


def _bucket(provider: str, asked: str | None, defaults: StorageDefaults) -> str | None:
    if provider == "local":
        if defaults.s3_only:
            raise DestinationUnavailable("This deployment stores every output on S3",
                                         "output_config.storage.provider", ("s3",))
        return None
    if not defaults.s3_configured:
        raise DestinationUnavailable("S3 storage is not configured on this deployment",
                                 "output_config.storage.provider")
    bucket = asked or defaults.s3_bucket
    if not bucket:
        raise DestinationInvalid("No S3 bucket was given and this deployment has no default",
                                 "output_config.storage.bucket")
    if defaults.s3_allowed_buckets and bucket not in defaults.s3_allowed_buckets:
        raise DestinationInvalid(f"Bucket {bucket!r} is not among the allowed buckets",
                                 "output_config.storage.bucket")
    return bucket


def _prefix(template: str | None, execution_id: str, defaults: StorageDefaults) -> str:
    template = template or defaults.path_template
    if _PLACEHOLDER not in template:
        raise DestinationInvalid(f"The storage path must contain {_PLACEHOLDER}, so that "
                                 "executions never overwrite each other's files",
                                 "output_config.storage.path")
    resolved = template.replace(_PLACEHOLDER, execution_id)
    parts = PurePosixPath(resolved).parts
    if ("{" in resolved or resolved.startswith("/") or ".." in parts or "\\" in resolved
            or not parts):
        raise DestinationInvalid("The storage path must be a relative path whose only "
                                 f"placeholder is {_PLACEHOLDER}", "output_config.storage.path")
    return "/".join(parts) + "/"
