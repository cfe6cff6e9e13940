"""output_config.storage resolved at submit: provider, bucket, path template, retention."""

from __future__ import annotations

import pytest

from comfy_serverless.storage.destinations import (
    Destination,
    DestinationInvalid,
    DestinationUnavailable,
    StorageDefaults,
    resolve_destination,
)
from comfy_serverless.store.options import StoredDestination

S3 = StorageDefaults(s3_configured=True, s3_bucket="default-bucket", retention_days=30)


def test_local_by_default_under_the_default_template() -> None:
    destination = resolve_destination({}, "exec_1", StorageDefaults())
    assert destination == Destination("local", None, "outputs/exec_1/")
    assert destination.location("a.png").key == "outputs/exec_1/a.png"
    assert destination.location("p.png", intermediate=True).key == (
        "outputs/exec_1/intermediate/p.png")


def test_s3_with_the_request_s_bucket_and_template() -> None:
    destination = resolve_destination(
        {"provider": "s3", "bucket": "mine", "path": "renders/{execution_id}/final",
         "public_access": True, "retention_days": 2}, "exec_2", S3)
    location = destination.location("a.png")
    assert (location.provider, location.bucket, location.key, location.public) == (
        "s3", "mine", "renders/exec_2/final/a.png", True)
    assert destination.retention_days == 2


def test_defaults_fill_what_the_request_leaves_out() -> None:
    destination = resolve_destination({"provider": "s3"}, "exec_3", S3)
    assert (destination.bucket, destination.retention_days) == ("default-bucket", 30)


def test_the_destination_survives_the_round_trip_through_options() -> None:
    destination = resolve_destination({"provider": "s3", "retention_days": 5}, "exec_4", S3)
    stored = StoredDestination.from_json(destination.as_stored().as_json())
    assert Destination.from_stored("exec_4", stored) == destination


def test_an_execution_from_before_resolved_destinations_keeps_the_default_folder() -> None:
    legacy = StoredDestination.from_json({"provider": "s3", "bucket": "b",
                                          "path": "mine/{execution_id}/", "retention_days": 3})
    assert Destination.from_stored("exec_5", legacy) == Destination(
        "local", None, "outputs/exec_5/")
    assert Destination.from_stored("exec_6", StoredDestination()) == Destination(
        "local", None, "outputs/exec_6/")


@pytest.mark.parametrize("path", [
    "outputs/", "../{execution_id}/", "/abs/{execution_id}/", "a/{execution_id}/{date}/",
    "a\\{execution_id}",
])
def test_templates_that_could_escape_or_collide_are_refused(path: str) -> None:
    with pytest.raises(DestinationInvalid) as refused:
        resolve_destination({"path": path}, "exec_1", S3)
    assert refused.value.field == "output_config.storage.path"


def test_s3_must_be_configured_and_the_bucket_allowed() -> None:
    with pytest.raises(DestinationUnavailable):
        resolve_destination({"provider": "s3", "bucket": "b"}, "e", StorageDefaults())
    with pytest.raises(DestinationInvalid) as refused:
        resolve_destination({"provider": "s3"}, "e", StorageDefaults(s3_configured=True))
    assert refused.value.field == "output_config.storage.bucket"
    allowed = StorageDefaults(s3_configured=True, s3_allowed_buckets=("ok",))
    with pytest.raises(DestinationInvalid):
        resolve_destination({"provider": "s3", "bucket": "other"}, "e", allowed)
    assert resolve_destination({"provider": "s3", "bucket": "ok"}, "e", allowed).bucket == "ok"


def test_comfyui_subfolders_are_kept_in_the_key_and_made_safe() -> None:
    destination = Destination("local", None, "outputs/exec_3/")
    assert destination.location("x_00001_.png", subfolder="a").key == (
        "outputs/exec_3/a/x_00001_.png")
    assert destination.location("x_00001_.png", subfolder="b/c d").key == (
        "outputs/exec_3/b/c_d/x_00001_.png")
    assert destination.location("x.png", subfolder="../../etc/./").key == (
        "outputs/exec_3/etc/x.png")
    assert destination.location("x.png", subfolder="..\\up", intermediate=True).key == (
        "outputs/exec_3/intermediate/up/x.png")
