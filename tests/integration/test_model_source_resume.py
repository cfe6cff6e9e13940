"""Model sources resumed only when no splice of two versions of a file can be admitted,
and a file evicted under a fetch fetched again; loopback servers only (see
test_model_sources.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from comfy_serverless.model_sources import (
    DownloadFailed,
    ModelCache,
    ModelSource,
    SourcePolicy,
    Transport,
    parse_source,
)
from comfy_serverless.testing_s3 import S3Server
from tests.model_files import POLICY, cache_for, file_body, leftovers, sha
from tests.range_server import RangeServer


async def test_an_unpinned_download_without_a_validator_starts_over_after_a_break(
        models: RangeServer, transport: Transport, tmp_path: Path) -> None:
    """The origin changes the file between the break and the retry: resuming would splice
    the old prefix onto the new suffix, and nothing would notice."""
    old, new = file_body("old", 300_000), file_body("new", 300_000)
    url = models.serve("/splice/plain.ckpt", old, drop_after=100_000)
    cache = cache_for(tmp_path, transport)
    with pytest.raises(DownloadFailed):
        await cache.fetch(parse_source(url), POLICY)
    assert leftovers(tmp_path) == []  # a partial file nothing could resume safely
    models.serve("/splice/plain.ckpt", new)
    assert (await cache.fetch(parse_source(url), POLICY)).path.read_bytes() == new
    assert models.ranges[-1] is None


@pytest.mark.parametrize("changed", [False, True])
async def test_an_unpinned_download_resumes_only_while_its_etag_holds(
        models: RangeServer, transport: Transport, tmp_path: Path, changed: bool) -> None:
    old, new = file_body("etag-old", 300_000), file_body("etag-new", 300_000)
    path = f"/splice/tagged-{changed}.ckpt"
    url = models.serve(path, old, drop_after=100_000, etag=True)
    cache = cache_for(tmp_path, transport)
    with pytest.raises(DownloadFailed):
        await cache.fetch(parse_source(url), POLICY)
    kept = cache.layout.partial(parse_source(url)).stat().st_size
    tag = models.files[path].tag
    if changed:
        models.serve(path, new, etag=True)
    model = await cache.fetch(parse_source(url), POLICY)
    assert model.path.read_bytes() == (new if changed else old)
    assert models.ranges[-1] == f"bytes={kept}-"
    assert models.headers[-1]["If-Range"] == tag
    assert leftovers(tmp_path) == [model.sha256]


async def test_an_s3_object_changed_since_its_partial_file_is_read_again_whole(
        s3_server: S3Server, tmp_path: Path) -> None:
    s3_server.create_bucket("models-changing")
    client = s3_server.client()
    old, new = file_body("s3-old", 200_000), file_body("s3-new", 200_000)
    client.put_object(Bucket="models-changing", Key="m.ckpt", Body=old)
    tag = client.head_object(Bucket="models-changing", Key="m.ckpt")["ETag"]
    client.put_object(Bucket="models-changing", Key="m.ckpt", Body=new)
    source = parse_source("s3://models-changing/m.ckpt")
    cache = ModelCache(tmp_path, max_bytes=1 << 30,
                       transport=Transport(s3=s3_server.s3_config(), chunk_bytes=1 << 16))
    partial = cache.layout.partial(source)  # a download of the old object, killed
    partial.write_bytes(old[:80_000])
    partial.with_suffix(".tag").write_text(tag)
    model = await cache.fetch(source, SourcePolicy(allowed_hosts=("s3://models-*",)))
    assert model.path.read_bytes() == new
    assert leftovers(tmp_path) == [sha(new)]


async def test_a_file_evicted_between_recall_and_use_is_downloaded_again(
        models: RangeServer, transport: Transport, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    body = file_body("race", 5000)
    url = models.serve("/race/model.ckpt", body)
    cache = cache_for(tmp_path, transport)
    first = await cache.fetch(parse_source(url), POLICY)
    recall = cache.layout.recall
    evicted: list[Path] = []

    def recall_then_evict(source: ModelSource) -> str | None:
        sha256 = recall(source)
        if not evicted:  # another process evicts the file just after the lookup
            first.path.unlink()
            evicted.append(first.path)
        return sha256

    monkeypatch.setattr(cache.layout, "recall", recall_then_evict)
    assert (await cache.fetch(parse_source(url), POLICY)).path.read_bytes() == body
    assert models.hits["/race/model.ckpt"] == 2
