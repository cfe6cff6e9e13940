"""Model sources: a loader input that names an https URL, an s3 object or a Hugging Face
file, fetched under the tier's policy into a content-addressed cache on the worker.

Leaves only: this package imports the SSRF policy and outbound client (webhooks/), the S3
settings (storage/s3.py) and the error root, nothing from api/, executions/ or worker/.
See docs/how-to/models.md for what is wired and what is not yet.
"""

from comfy_serverless.model_sources.cache import CachedModel, ModelCache
from comfy_serverless.model_sources.errors import (
    DownloadFailed,
    HashMismatch,
    HashNotAllowed,
    MalformedSource,
    ModelSourceError,
    ModelUnavailable,
    SourceRefused,
)
from comfy_serverless.model_sources.layout import (
    CacheFull,
    affinity_token,
    placed_name,
    source_key,
)
from comfy_serverless.model_sources.origins import Origin
from comfy_serverless.model_sources.policy import (
    HostCredential,
    Secret,
    SourcePolicy,
    check_source,
    host_allowed,
    hub_credential,
)
from comfy_serverless.model_sources.sources import (
    DEFAULT_HF_ENDPOINT,
    ModelSource,
    is_model_source,
    parse_source,
)
from comfy_serverless.model_sources.transfer import Progress, Transport

__all__ = ["DEFAULT_HF_ENDPOINT", "CacheFull", "CachedModel", "DownloadFailed", "HashMismatch",
           "HashNotAllowed", "HostCredential", "MalformedSource", "ModelCache",
           "ModelSource", "ModelSourceError", "ModelUnavailable", "Origin", "Progress", "Secret",
           "SourcePolicy", "SourceRefused", "Transport", "check_source", "host_allowed",
           "hub_credential",
           "affinity_token", "is_model_source", "parse_source", "placed_name",
           "source_key"]
