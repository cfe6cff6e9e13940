"""The static scan of custom node packs: the patterns it flags, where, and what it leaves
alone."""

from __future__ import annotations

from pathlib import Path

import pytest

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


def test_a_git_folder_is_not_scanned(tmp_path: Path) -> None:
    pack = write_pack(tmp_path / "pack")
    (pack / ".git").mkdir()
    (pack / ".git" / "hook.py").write_text("import subprocess\n")
    assert scan_pack(pack) == ()
