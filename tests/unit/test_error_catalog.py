import re
from pathlib import Path

from comfy_serverless.api.error_catalog import ERRORS

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "reference" / "errors.md").read_text()


def _codes_in_source() -> set[str]:
    codes = set()
    for path in (ROOT / "src").rglob("*.py"):
        text = path.read_text()
        codes |= set(re.findall(r'error_code = "([A-Z_]+)"', text))
        codes |= set(re.findall(r'error_response\(\s*\d+,\s*"([A-Z_]+)"', text))
    return codes - {"BAD_REQUEST"}


def test_every_code_the_source_answers_with_is_catalogued_and_documented() -> None:
    catalogued = {doc.code for doc in ERRORS}
    assert _codes_in_source() <= catalogued
    for code in catalogued:
        assert f"`{code}`" in DOC, code


def test_every_status_code_of_the_spec_is_documented() -> None:
    for status in (200, 202, 400, 401, 403, 404, 409, 422, 429, 500, 502, 503):
        assert f"| {status} " in DOC, status
