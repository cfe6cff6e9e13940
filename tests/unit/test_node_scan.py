"""The static scan of custom node packs: the patterns it flags, where, and what it leaves
alone."""

from __future__ import annotations

from pathlib import Path

import pytest

from comfy_serverless.environments.nodes import tree_digest
from comfy_serverless.environments.scan import scan_pack, scan_source
from tests.node_packs import ECHO_NODE, SUBPROCESS_AT_IMPORT, write_pack


def flagged(source: str) -> list[str]:
    return [str(finding) for finding in scan_source(source, "nodes.py")]


def test_a_node_that_calls_subprocess_at_import_is_flagged(tmp_path: Path) -> None:
    pack = write_pack(tmp_path / "pack", SUBPROCESS_AT_IMPORT)
    assert [str(finding) for finding in scan_pack(pack)] == [
        "nodes.py:1: subprocess: imports subprocess",
        "nodes.py:3: subprocess: calls subprocess.run",
    ]


def test_a_plain_node_has_no_findings(tmp_path: Path) -> None:
    assert scan_pack(write_pack(tmp_path / "pack", ECHO_NODE)) == ()


@pytest.mark.parametrize(("source", "expected"), [
    # subprocess is flagged wherever it is used: importing it is the intent
    ("def run():\n    import subprocess as sp\n    sp.Popen(['ls'])\n",
     ["nodes.py:2: subprocess: imports subprocess",
      "nodes.py:3: subprocess: calls subprocess.Popen"]),
    ("from subprocess import check_output\n", ["nodes.py:1: subprocess: imports from subprocess"]),
    ("import os\ndef f():\n    os.system('id')\n", ["nodes.py:3: subprocess: calls os.system"]),
    ("import importlib\nsp = importlib.import_module('subprocess')\n",
     ["nodes.py:2: subprocess: imports subprocess by importlib.import_module"]),
    ("sp = __import__('subprocess')\n",
     ["nodes.py:1: subprocess: imports subprocess by __import__"]),
    ("from os import execvp\nexecvp('sh', ['sh'])\n",
     ["nodes.py:2: subprocess: calls os.execvp"]),
    ("def f(code):\n    return eval(code)\n",
     ["nodes.py:2: dynamic-code: eval of a non-literal"]),
    ("exec(compile(open('x').read(), 'x', 'exec'))\n",
     ["nodes.py:1: dynamic-code: exec of a non-literal",
      "nodes.py:1: dynamic-code: compile of a non-literal"]),
    ("import requests\nMODELS = requests.get('https://x.example/list').json()\n",
     ["nodes.py:2: network-at-import: calls requests.get while the module is imported"]),
    ("from urllib.request import urlopen\nclass Node:\n    DATA = urlopen('https://x')\n",
     ["nodes.py:3: network-at-import: calls urllib.request.urlopen while the module is "
      "imported"]),
    ("import socket\nif True:\n    s = socket.create_connection(('x', 1))\n",
     ["nodes.py:3: network-at-import: calls socket.create_connection while the module is "
      "imported"]),
    ("import httpx as h\n@h.get\ndef f():\n    pass\n",
     []),  # a decorator expression that is no call
    ("import httpx as h\ndef f(x=h.get('https://x')):\n    pass\n",
     ["nodes.py:2: network-at-import: calls httpx.get while the module is imported"]),
    ("def broken(:\n", ["nodes.py:1: unparsable: not valid Python, so it cannot be checked"]),
])
def test_each_pattern_is_flagged_with_its_line(source: str, expected: list[str]) -> None:
    assert flagged(source) == expected


@pytest.mark.parametrize("source", [
    # network calls inside a function run when the node runs, not when ComfyUI imports it
    "import requests\ndef fetch(url):\n    return requests.get(url, timeout=5)\n",
    "import urllib.request\nload = lambda url: urllib.request.urlopen(url)\n",
    # literals only: the code is in the file for the scan to read
    "eval('1 + 1')\nexec('x = 1')\n",
    "import os\nPATH = os.path.join('a', 'b')\n",
])
def test_what_is_left_alone(source: str) -> None:
    assert flagged(source) == []


@pytest.mark.parametrize(("source", "expected"), [
    ("import asyncio\nasyncio.run(asyncio.create_subprocess_shell('id'))\n",
     ["nodes.py:2: subprocess: calls asyncio.create_subprocess_shell"]),
    ("from asyncio import create_subprocess_exec as run\ndef f():\n    return run('id')\n",
     ["nodes.py:3: subprocess: calls asyncio.create_subprocess_exec"]),
    ("import asyncio\nasync def f():\n    await asyncio.get_running_loop().subprocess_shell("
     "None, 'id')\n", ["nodes.py:3: subprocess: calls .subprocess_shell"]),
    ("def f(loop):\n    return loop.subprocess_exec(None, 'id')\n",
     ["nodes.py:2: subprocess: calls loop.subprocess_exec"]),
    ("__import__('os').system('id')\n",
     ["nodes.py:1: subprocess: calls os.system",
      "nodes.py:1: dynamic-import: imports os by __import__"]),
    ("import importlib\nimportlib.import_module('os').system('id')\n",
     ["nodes.py:2: subprocess: calls os.system",
      "nodes.py:2: dynamic-import: imports os by importlib.import_module"]),
    ("import importlib\ndef f(name):\n    return importlib.import_module(name)\n",
     ["nodes.py:3: dynamic-import: importlib.import_module of a non-literal module"]),
    ("m = __import__('o' + 's')\n", ["nodes.py:1: dynamic-import: __import__ of a non-literal "
                                      "module"]),
    ("import importlib\nload = importlib.import_module\nload('os')\n",
     ["nodes.py:2: dynamic-import: refers to importlib.import_module without calling it"]),
    ("from os import *\nsystem('id')\n",
     ["nodes.py:1: star-import: from os import * binds names unseen"]),
    ("from subprocess import *\n", ["nodes.py:1: subprocess: imports from subprocess",
                                     "nodes.py:1: star-import: from subprocess import * binds "
                                     "names unseen"]),
    ("import ctypes\nctypes.CDLL(None).system(b'id')\n",
     ["nodes.py:1: native-code: imports ctypes", "nodes.py:2: native-code: calls ctypes.CDLL"]),
    ("from cffi import FFI\n", ["nodes.py:1: native-code: imports from cffi"]),
    ("import runpy\nrunpy.run_path('helper.txt')\n", ["nodes.py:1: dynamic-code: imports runpy"]),
    ("import os\nif os.fork() == 0:\n    os.execv('/bin/sh', ['sh'])\n",
     ["nodes.py:2: subprocess: calls os.fork", "nodes.py:3: subprocess: calls os.execv"]),
    ("import os\nos.spawnlp(os.P_WAIT, 'id', 'id')\n",
     ["nodes.py:2: subprocess: calls os.spawnlp"]),
    ("import pty\npty.spawn('sh')\n",
     ["nodes.py:1: subprocess: imports pty", "nodes.py:2: subprocess: calls pty.spawn"]),
    ("import posix\nposix.system('id')\n", ["nodes.py:2: subprocess: calls os.system"]),
    ("import urllib.request\ndef f():\n    return urllib.request.urlopen('https://x')\n"
     "DATA = f()\n",
     ["nodes.py:4: network-at-import: calls f (which calls urllib.request.urlopen) while the "
      "module is imported"]),
])
def test_each_bypass_the_review_found_is_flagged(source: str, expected: list[str]) -> None:
    assert flagged(source) == expected


@pytest.mark.parametrize("source", [
    # a helper that makes a network call is fine until it is called at import
    "import requests\ndef fetch(url):\n    return requests.get(url)\n"
    "def node():\n    return fetch('https://x')\n",
    "import importlib\nmodule = importlib.import_module('json')\n",
    "from .nodes import *\nimport asyncio\nasyncio.run(asyncio.sleep(0))\n",
    "import os\nos.makedirs('out', exist_ok=True)\n",
])
def test_ordinary_code_stays_clean(source: str) -> None:
    assert flagged(source) == []


def test_a_sourceless_compiled_file_is_flagged(tmp_path: Path) -> None:
    pack = write_pack(tmp_path / "pack")
    (pack / "helper.pyc").write_bytes(b"\x00" * 16)
    (pack / "fast.cpython-311-x86_64-linux-gnu.so").write_bytes(b"\x7fELF")
    (pack / "data.bin").write_bytes(b"\x7fELF\x02\x01")
    (pack / "__pycache__").mkdir()
    (pack / "__pycache__" / "nodes.cpython-311.pyc").write_bytes(b"\x00" * 16)
    binary = "binary code the scan cannot read"
    assert [str(finding) for finding in scan_pack(pack)] == [
        f"__pycache__/nodes.cpython-311.pyc:1: binary: {binary}",
        f"data.bin:1: binary: {binary}",
        f"fast.cpython-311-x86_64-linux-gnu.so:1: binary: {binary}",
        f"helper.pyc:1: binary: {binary}",
    ]


def test_a_symlink_is_flagged_and_never_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "evil.py").write_text("import subprocess\n")
    pack = write_pack(tmp_path / "pack")
    (pack / "lib").symlink_to(outside, target_is_directory=True)
    (pack / "extra.py").symlink_to(outside / "evil.py")
    assert [str(finding) for finding in scan_pack(pack)] == [
        f"extra.py:1: symlink: points at {outside / 'evil.py'}, which the scan does not follow",
        f"lib:1: symlink: points at {outside}, which the scan does not follow",
    ]


def test_the_tree_digest_counts_symlinks_by_their_target(tmp_path: Path) -> None:
    pack = write_pack(tmp_path / "pack")
    plain = tree_digest(pack)
    (pack / "lib").symlink_to(tmp_path / "one", target_is_directory=True)
    linked = tree_digest(pack)
    (pack / "lib").unlink()
    (pack / "lib").symlink_to(tmp_path / "two", target_is_directory=True)
    assert len({plain, linked, tree_digest(pack)}) == 3


def test_a_git_folder_is_not_scanned(tmp_path: Path) -> None:
    pack = write_pack(tmp_path / "pack")
    (pack / ".git").mkdir()
    (pack / ".git" / "hook.py").write_text("import subprocess\n")
    assert scan_pack(pack) == ()
