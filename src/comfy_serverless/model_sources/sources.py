"""What a loader input may name instead of a file already on disk: an `https://` URL, an
`s3://bucket/key` object, or a Hugging Face file `hf://owner/repo/path/in/repo[@revision]`.

Parsing is pure (no lookup, no connection) so that it can run at submit and turn a bad value
into a 400/422 at once. A source may pin its content with a `#sha256=<64 hex>` fragment or a
sha256 given beside it in the request; both at once must agree. User info in a URL
(`https://user:pass@…`) is refused: credentials belong in the operator's settings, where
they never reach an answer or a log. `display` is the form for messages and logs: no query
string (a presigned URL's signature stays out of them)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import quote, unquote, urlsplit

from comfy_serverless.loader_inputs import is_model_source
from comfy_serverless.model_sources.errors import MalformedSource
from comfy_serverless.outbound_urls import UnsafeDestination, parse_url

__all__ = ["DEFAULT_HF_ENDPOINT", "ModelSource", "SourceKind", "is_model_source",
           "parse_source"]

DEFAULT_HF_ENDPOINT = "https://huggingface.co"
SourceKind = Literal["https", "s3", "hf"]
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_HF_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
_REVISION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_UNSAFE_NAME_CHARS = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class ModelSource:
    """A parsed source. `url` is where https and hf sources are fetched from; `bucket` and
    `key` name an s3 object. `identity` is one spelling per source (no fragment), the key
    of single-flight and of the cache's source index."""

    kind: SourceKind
    identity: str
    display: str
    basename: str
    sha256: str | None = None
    url: str | None = None
    bucket: str | None = None
    key: str | None = None

    @property
    def host(self) -> str:
        """What the `model_sources` allowlist is matched against: the URL's host for https
        and hf, `s3://<bucket>` for s3."""
        if self.kind == "s3":
            return f"s3://{self.bucket}"
        return (urlsplit(self.url).hostname or "") if self.url else ""


def parse_source(value: str, *, sha256: str | None = None,
                 hf_endpoint: str = DEFAULT_HF_ENDPOINT) -> ModelSource:
    """The source `value` names, pinned to `sha256` when given; MalformedSource otherwise."""
    if any(ord(char) < 0x21 or char == "\x7f" for char in value):
        raise MalformedSource("a model source may not contain spaces or control characters")
    body, _, fragment = value.partition("#")
    pin = _pinned_hash(fragment, sha256)
    if body.startswith("https://"):
        return _https_source(body, pin)
    if body.startswith("s3://"):
        return _s3_source(body, pin)
    if body.startswith("hf://"):
        return _hf_source(body, pin, hf_endpoint)
    raise MalformedSource("a model source starts with https://, s3:// or hf://")


def _pinned_hash(fragment: str, given: str | None) -> str | None:
    from_fragment = None
    if fragment:
        name, _, digest = fragment.partition("=")
        if name != "sha256":
            raise MalformedSource("the only fragment a model source may carry is #sha256=<hex>")
        from_fragment = _checked_hash(digest)
    from_request = _checked_hash(given) if given is not None else None
    if from_fragment and from_request and from_fragment != from_request:
        raise MalformedSource("the source's #sha256= fragment and its sha256 disagree")
    return from_fragment or from_request


def _checked_hash(digest: str) -> str:
    lowered = digest.lower()
    if not _SHA256.match(lowered):
        raise MalformedSource("a sha256 is 64 hexadecimal digits")
    return lowered


def _safe_basename(path: str) -> str:
    """The path's last segment as a file name ComfyUI can list: unsafe characters become
    `_`; a name that leaves nothing usable is refused."""
    name = _UNSAFE_NAME_CHARS.sub("_", unquote(path.rstrip("/").rsplit("/", 1)[-1]))
    if not name.strip("._"):
        raise MalformedSource("a model source must end in a file name")
    return name[-120:]


def _https_source(body: str, pin: str | None) -> ModelSource:
    parts = urlsplit(body)
    if "@" in parts.netloc:
        raise MalformedSource("a model source URL may not carry user info; the operator "
                              "configures credentials per host")
    try:
        target = parse_url(body)
    except UnsafeDestination as exc:
        raise MalformedSource(f"the model URL is malformed: {exc}") from exc
    display = f"https://{target.authority}{parts.path}"
    return ModelSource("https", body, display, _safe_basename(parts.path), pin, url=body)


def _s3_source(body: str, pin: str | None) -> ModelSource:
    bucket, _, key = body.removeprefix("s3://").partition("/")
    if not _BUCKET.match(bucket) or ".." in bucket:
        raise MalformedSource("an s3 source is s3://<bucket>/<key>, with a valid bucket name")
    if not key or "?" in key:
        raise MalformedSource("an s3 source names an object key after its bucket")
    return ModelSource("s3", body, body, _safe_basename(key), pin, bucket=bucket, key=key)


def _hf_source(body: str, pin: str | None, endpoint: str) -> ModelSource:
    path, _, revision = body.removeprefix("hf://").partition("@")
    revision = revision or "main"
    segments = path.split("/")
    if len(segments) < 3 or not all(_HF_NAME.match(name) for name in segments[:2]):
        raise MalformedSource("a Hugging Face source is hf://<owner>/<repo>/<path>[@revision]")
    if any(segment in ("", ".", "..") for segment in segments[2:]):
        raise MalformedSource("a Hugging Face file path has no empty, '.' or '..' segment")
    if not _REVISION.match(revision):
        raise MalformedSource("a Hugging Face revision is a branch, tag or commit name")
    owner, repo, in_repo = segments[0], segments[1], "/".join(segments[2:])
    url = (f"{endpoint.rstrip('/')}/{owner}/{repo}/resolve/{quote(revision, safe='')}/"
           f"{quote(in_repo)}")
    identity = f"hf://{owner}/{repo}/{in_repo}@{revision}"
    return ModelSource("hf", identity, identity, _safe_basename(in_repo), pin, url=url)
