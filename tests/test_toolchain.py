"""The toolchain's verdicts, run as part of the suite: import contracts (the architecture's
arrows), ruff's lint and format check. A failure names the file and the rule."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def run_tool(name: str, *args: str) -> subprocess.CompletedProcess:
    tool = BIN / name
    assert tool.exists(), f"{name} is not installed next to {sys.executable} (make venv installs it)"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([str(tool), *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_import_contracts_are_kept():
    done = run_tool("lint-imports", "--no-cache")
    assert done.returncode == 0, f"import contracts broken:\n{done.stdout}\n{done.stderr}"
    assert " 0 broken" in done.stdout


@pytest.mark.parametrize("args", [("check", "."), ("format", "--check", ".")], ids=["lint", "format"])
def test_ruff_passes(args):
    done = run_tool("ruff", *args)
    assert done.returncode == 0, f"ruff {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
