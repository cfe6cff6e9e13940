"""An execution's options: what its submit asked for beyond the workflow, kept in the
`options` column as one JSON object, parsed once when a row is read and written once at
submit.

The JSON keeps the shape the submit has always written, key for key and in the same
order, so that rows written before these types existed parse, and rows written now read
the same to any older reader:

    {"metadata": {...},
     "output_config": {"format", "quality", "compression",
                       "storage": {"provider", "bucket", "prefix", "public_access",
                                   "retention_days"}},
     "execution_config": {"priority", "timeout", "gpu_memory_fraction", "batch_size",
                          "enable_optimization", "retry_attempts"},
     "notification_config": {"webhook_url", "include_progress", "include_intermediate"},
     "staged_inputs": [{"node_id", "input", "filename", "provider", "bucket", "key"}],
     "model_sources": {"allowed_hosts": [...],
                       "inputs": [{"node_id", "input", "source", "sha256", "folder"}]}}

`staged_inputs` is written only when the submit staged an image, `model_sources` only when a
loader input names a model source. Older rows may lack any
part, or a part's keys (a storage without `prefix` predates destinations resolved at
submit): each missing value reads as the default its readers always gave it. Rows are never
rewritten, so a legacy row's missing keys are never written back with their defaults.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ExecutionOptions",
    "ModelSourceInput",
    "ModelSourceOptions",
    "NotifyOptions",
    "OutputOptions",
    "RunOptions",
    "StagedInputOptions",
    "StoredDestination",
]


def _section(raw: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    """A part of the options, {} when it is missing (or null, which no submit wrote)."""
    value = raw.get(key)
    return value if isinstance(value, Mapping) else {}


def _int_or_none(value: Any) -> int | None:
    return None if value is None else int(value)


@dataclass(frozen=True)
class StoredDestination:
    """`output_config.storage`: where the execution's files go, as resolved at submit.
    `prefix` is None in rows from before the destination was resolved at submit; such an
    execution keeps its files in the default local folder (storage/destinations.py)."""

    provider: str = "local"
    bucket: str | None = None
    prefix: str | None = None
    public_access: bool = False
    retention_days: int | None = None

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> StoredDestination:
        prefix = raw.get("prefix")
        retention = raw.get("retention_days")
        return cls(str(raw.get("provider") or "local"), raw.get("bucket"),
                   None if prefix is None else str(prefix), bool(raw.get("public_access")),
                   int(retention) if retention else None)

    def as_json(self) -> dict[str, Any]:
        return {"provider": self.provider, "bucket": self.bucket, "prefix": self.prefix,
                "public_access": self.public_access, "retention_days": self.retention_days}


@dataclass(frozen=True)
class OutputOptions:
    """`output_config`: the files' format as asked for (`jpg` stays `jpg`), and where they go."""

    format: str = "png"
    quality: int = 95
    compression: str | None = None
    storage: StoredDestination = field(default_factory=StoredDestination)

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> OutputOptions:
        return cls(str(raw.get("format") or "png"), int(raw.get("quality") or 95),
                   raw.get("compression"), StoredDestination.from_json(_section(raw, "storage")))

    def as_json(self) -> dict[str, Any]:
        return {"format": self.format, "quality": self.quality,
                "compression": self.compression, "storage": self.storage.as_json()}


@dataclass(frozen=True)
class RunOptions:
    """`execution_config`, with the timeout the submit settled on (None: a row without one,
    which runs without a timeout). `priority`, `batch_size` and `retry_attempts` are kept as
    asked for; what they decided lives in the execution's own columns and workflow."""

    priority: int | None = None
    timeout: int | None = None
    gpu_memory_fraction: float | None = None
    batch_size: int | None = None
    enable_optimization: bool = True
    retry_attempts: int | None = None

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> RunOptions:
        fraction = raw.get("gpu_memory_fraction")
        return cls(_int_or_none(raw.get("priority")), _int_or_none(raw.get("timeout")),
                   None if fraction is None else float(fraction),
                   _int_or_none(raw.get("batch_size")),
                   raw.get("enable_optimization") is not False,
                   _int_or_none(raw.get("retry_attempts")))

    def as_json(self) -> dict[str, Any]:
        return {"priority": self.priority, "timeout": self.timeout,
                "gpu_memory_fraction": self.gpu_memory_fraction, "batch_size": self.batch_size,
                "enable_optimization": self.enable_optimization,
                "retry_attempts": self.retry_attempts}


@dataclass(frozen=True)
class NotifyOptions:
    """`notification_config` without its secret (kept in its own column): the body's webhook
    URL (None when it came from X-Webhook-URL, or there is none) and what it reports."""

    webhook_url: str | None = None
    include_progress: bool = False
    include_intermediate: bool = False

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> NotifyOptions:
        return cls(raw.get("webhook_url"), bool(raw.get("include_progress")),
                   bool(raw.get("include_intermediate")))

    def as_json(self) -> dict[str, Any]:
        return {"webhook_url": self.webhook_url, "include_progress": self.include_progress,
                "include_intermediate": self.include_intermediate}


@dataclass(frozen=True)
class StagedInputOptions:
    """One input image staged at submit: the workflow input it fills, the file name the
    worker gives it in ComfyUI's input folder, and where the staged copy is stored."""

    node_id: str
    input: str
    filename: str
    provider: str
    bucket: str | None
    key: str

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> StagedInputOptions:
        return cls(str(raw["node_id"]), str(raw["input"]), str(raw["filename"]),
                   str(raw["provider"]), raw.get("bucket"), str(raw["key"]))

    def as_json(self) -> dict[str, Any]:
        return {"node_id": self.node_id, "input": self.input, "filename": self.filename,
                "provider": self.provider, "bucket": self.bucket, "key": self.key}


@dataclass(frozen=True)
class ModelSourceInput:
    """A loader input that names a model source, as submit checked it: the worker fetches
    `source` (pinned to `sha256` when given), places it in the model folder `folder` and
    gives the input the placed file's name."""

    node_id: str
    input: str
    source: str
    sha256: str | None
    folder: str

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> ModelSourceInput:
        sha256 = raw.get("sha256")
        return cls(str(raw["node_id"]), str(raw["input"]), str(raw["source"]),
                   None if sha256 is None else str(sha256), str(raw["folder"]))

    def as_json(self) -> dict[str, Any]:
        return {"node_id": self.node_id, "input": self.input, "source": self.source,
                "sha256": self.sha256, "folder": self.folder}


@dataclass(frozen=True)
class ModelSourceOptions:
    """The execution's model sources and the `model_sources` allowlist of its key's tier at
    submit, which the worker checks each source against again before it connects."""

    allowed_hosts: tuple[str, ...] = ()
    inputs: tuple[ModelSourceInput, ...] = ()

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> ModelSourceOptions:
        return cls(tuple(str(host) for host in raw.get("allowed_hosts") or ()),
                   tuple(ModelSourceInput.from_json(item) for item in raw.get("inputs") or ()))

    def as_json(self) -> dict[str, Any]:
        return {"allowed_hosts": list(self.allowed_hosts),
                "inputs": [item.as_json() for item in self.inputs]}


@dataclass(frozen=True)
class ExecutionOptions:
    """Everything the `options` column holds (see the module's docstring for its JSON)."""

    metadata: dict[str, Any] = field(default_factory=dict)
    output: OutputOptions = field(default_factory=OutputOptions)
    run: RunOptions = field(default_factory=RunOptions)
    notify: NotifyOptions = field(default_factory=NotifyOptions)
    staged_inputs: tuple[StagedInputOptions, ...] = ()
    model_sources: ModelSourceOptions = field(default_factory=ModelSourceOptions)

    @classmethod
    def from_json(cls, raw: Mapping[str, Any] | None) -> ExecutionOptions:
        raw = raw or {}
        return cls(dict(_section(raw, "metadata")),
                   OutputOptions.from_json(_section(raw, "output_config")),
                   RunOptions.from_json(_section(raw, "execution_config")),
                   NotifyOptions.from_json(_section(raw, "notification_config")),
                   tuple(StagedInputOptions.from_json(item)
                         for item in raw.get("staged_inputs") or ()),
                   ModelSourceOptions.from_json(_section(raw, "model_sources")))

    def as_json(self) -> dict[str, Any]:
        written: dict[str, Any] = {
            "metadata": self.metadata, "output_config": self.output.as_json(),
            "execution_config": self.run.as_json(),
            "notification_config": self.notify.as_json(),
        }
        if self.staged_inputs:
            written["staged_inputs"] = [item.as_json() for item in self.staged_inputs]
        if self.model_sources.inputs:
            written["model_sources"] = self.model_sources.as_json()
        return written
