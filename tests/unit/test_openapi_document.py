"""The served OpenAPI document: valid as the version it declares, equal to the committed
docs/reference/openapi.json, with spec §8's info, servers and security, and a schema for
every success answer whose examples fit it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.routing import APIRoute
from openapi_spec_validator import validate

from comfy_serverless.api.app import create_app
from comfy_serverless.api.contract import flat_routes
from comfy_serverless.api.openapi_export import REGENERATE, render
from comfy_serverless.cli import main
from comfy_serverless.settings import Settings
from tests.openapi_check import schema_validator

COMMITTED = Path(__file__).resolve().parents[2] / "docs" / "reference" / "openapi.json"
UNSECURED = {"/healthz", "/readyz", "/errors", "/errors/{code}", "/files/{key}"}


def _document(tmp_path: Path, **settings: Any) -> dict[str, Any]:
    app = create_app(Settings(data_dir=tmp_path, **settings), with_worker=False)
    return app.openapi()


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(path, method, operation) for path, item in document["paths"].items()
            for method, operation in item.items()]


@pytest.fixture(scope="module")
def document(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return _document(tmp_path_factory.mktemp("openapi"))


def test_the_document_validates_as_the_version_it_declares(document: dict[str, Any]) -> None:
    assert document["openapi"] == "3.1.0"
    validate(document)


def test_the_committed_document_is_the_served_one(tmp_path: Path) -> None:
    served = render(Settings(data_dir=tmp_path))
    assert COMMITTED.read_text() == served, (
        f"docs/reference/openapi.json is stale: regenerate it with `{REGENERATE}` "
        "(with no COMFY_SERVERLESS_API_* variables set) and commit it")


def test_info_and_servers_come_from_the_settings(tmp_path: Path) -> None:
    document = _document(
        tmp_path, api_title="Render API", api_contact_name="Support",
        api_contact_url="https://support.example.com", api_contact_email="ops@example.com",
        api_license_name="Proprietary", api_license_url="",
        api_servers=["https://api.example.com", "https://staging.example.com"])
    assert document["info"]["title"] == "Render API"
    assert document["info"]["contact"] == {"name": "Support", "email": "ops@example.com",
                                           "url": "https://support.example.com/"}
    assert document["info"]["license"] == {"name": "Proprietary"}
    assert document["servers"] == [{"url": "https://api.example.com"},
                                   {"url": "https://staging.example.com"}]
    validate(document)


def test_by_default_no_contact_and_no_servers(document: dict[str, Any]) -> None:
    assert "contact" not in document["info"]
    assert "servers" not in document
    assert document["info"]["license"]["name"] == "MIT"


def test_every_v1_operation_needs_the_api_key_and_no_other_does(
        document: dict[str, Any]) -> None:
    schemes = document["components"]["securitySchemes"]
    assert schemes["ApiKeyAuth"]["type"] == "http"
    assert schemes["ApiKeyAuth"]["scheme"] == "bearer"
    for path, method, operation in _operations(document):
        if path.startswith("/v1/"):
            assert operation["security"] == [{"ApiKeyAuth": []}], (method, path)
        elif path == "/metrics":
            assert operation["security"] == [{"MetricsToken": []}, {}]
        else:
            assert path in UNSECURED
            assert "security" not in operation, (method, path)
        names = {parameter["name"].lower() for parameter in operation.get("parameters", [])}
        assert "authorization" not in names, (method, path)


def test_no_route_passes_its_answer_through_a_model(tmp_path: Path) -> None:
    """The answer models describe; they never filter or re-serialise what a route returns
    (a `response_model` would drop a field it does not name, such as `warnings`)."""
    app = create_app(Settings(data_dir=tmp_path), with_worker=False)
    for route in flat_routes(app.routes):
        if isinstance(route, APIRoute):
            assert route.response_model is None, route.path
            assert route.response_field is None, route.path


def test_every_success_answer_has_a_schema_of_its_own(document: dict[str, Any]) -> None:
    for path, method, operation in _operations(document):
        successes = {status: answer for status, answer in operation["responses"].items()
                     if status.startswith("2")}
        assert successes, (method, path)
        for status, answer in successes.items():
            if status == "204":
                assert "content" not in answer
                continue
            for media_type, content in answer["content"].items():
                schema = content["schema"]
                if media_type == "application/json":
                    assert set(schema) == {"$ref"}, (method, path, status)
                elif media_type == "text/event-stream":  # `schema` describes one event
                    assert schema["required"] == ["event", "data"], (method, path, status)
                else:
                    assert schema.get("type") == "string", (method, path, status)


def test_every_answer_model_and_the_error_body_have_examples_that_fit_them(
        document: dict[str, Any]) -> None:
    answer_models = {
        content["schema"]["$ref"].rsplit("/", 1)[1]
        for _, _, operation in _operations(document)
        for answer in operation["responses"].values()
        for content in answer.get("content", {}).values() if "$ref" in content["schema"]}
    assert len(answer_models) >= 20
    for name in sorted(answer_models):
        examples = document["components"]["schemas"][name].get("examples")
        assert examples, name
        for example in examples:
            schema_validator(document, {"$ref": f"#/components/schemas/{name}"}).validate(
                example)


def test_every_answer_declares_its_headers(document: dict[str, Any]) -> None:
    for path, method, operation in _operations(document):
        keyed = "security" in operation and path != "/metrics"
        for status, answer in operation["responses"].items():
            headers = set(answer["headers"])
            assert {"API-Version", "API-Deprecated", "API-Sunset"} <= headers
            assert ("X-RateLimit-Remaining" in headers) == keyed, (method, path, status)
            assert ("Retry-After" in headers) == (status in ("429", "503"))
    execute = document["paths"]["/v1/workflows/execute"]["post"]["responses"]
    assert {"Idempotent-Replayed", "Preference-Applied"} <= set(execute["202"]["headers"])


def test_the_cli_prints_the_committed_document(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["openapi"]) == 0
    assert capsys.readouterr().out == COMMITTED.read_text()
