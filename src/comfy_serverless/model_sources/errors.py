"""The ways a model source can fail, typed so that the integration maps each to one answer:
a malformed or refused source is the client's mistake (a 400/422 at submit); a failed
download is `MODEL_UNAVAILABLE`, retryable when the network failed and not when the bytes
were wrong. No message here ever carries a credential: messages are built from the parsed
source (scheme, host, path), never from headers or the settings' secrets."""

from __future__ import annotations

from comfy_serverless.errors import ComfyServerlessError

__all__ = ["DownloadFailed", "HashMismatch", "HashNotAllowed", "MalformedSource",
           "ModelSourceError", "ModelUnavailable", "SourceRefused"]


class ModelSourceError(ComfyServerlessError):
    """Root of this package's errors."""


class MalformedSource(ModelSourceError, ValueError):
    """The value is not a model source this service can read (bad scheme, path, revision,
    fragment or sha256)."""


class SourceRefused(ModelSourceError):
    """A well-formed source that policy forbids: a host outside the tier's `model_sources`
    allowlist, or one the SSRF rules refuse. Raised before any connection."""


class HashNotAllowed(ModelSourceError):
    """`require_model_hashes` is on and this sha256 is not in the operator's allowlist."""


class ModelUnavailable(ModelSourceError):
    """The model could not be made available; `retryable` says whether trying again later
    can help."""

    retryable: bool = False


class DownloadFailed(ModelUnavailable):
    """The network or the server failed (connection dropped, timeout, 5xx, 429): the partial
    file is kept when it can be resumed safely (a pinned source, or a validator the server
    gave), so a later try resumes with `Range`."""

    retryable = True


class HashMismatch(ModelUnavailable):
    """The downloaded bytes do not have the pinned (or allowlisted) sha256. Nothing is
    kept: the partial file is removed, and trying again would fetch the same bytes."""

    retryable = False
