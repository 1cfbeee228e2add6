"""The toolchain's verdicts, run as part of the suite: import contracts (the architecture's
arrows), ruff's lint and format check, strict mypy, and the declared Python range. A failure names
the file and the rule."""

import os
import re
import subprocess
import sys
import tomllib
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


def test_mypy_strict_passes():
    """Strict typing where pyproject's [tool.mypy] says (directories, so new modules are included)."""
    done = run_tool("mypy")
    assert done.returncode == 0, f"mypy:\n{done.stdout}\n{done.stderr}"
    assert "Success" in done.stdout


# ---------------------------------------------------------------------------------------------
# The declared Python range is true: one minimum everywhere, and no code needing a newer one.

PYPROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def declared_minimum() -> tuple[int, int]:
    match = re.fullmatch(r">=\s*3\.(\d+)", PYPROJECT["project"]["requires-python"])
    assert match, f"requires-python should be '>=3.N', not {PYPROJECT['project']['requires-python']!r}"
    return 3, int(match[1])


def test_every_tool_assumes_the_declared_python():
    major, minor = declared_minimum()
    assert PYPROJECT["tool"]["ruff"]["target-version"] == f"py{major}{minor}"
    assert PYPROJECT["tool"]["mypy"]["python_version"] == f"{major}.{minor}"
    # The agent's install script (admin/install_templates) looks for the same minimum.
    script = (REPO_ROOT / "admin/install_templates/install.sh").read_text(encoding="utf-8")
    assert f"sys.version_info < ({major}, {minor})" in script
    assert f"Python {major}.{minor} or newer" in script
    assert sys.version_info >= (major, minor)


def test_no_code_needs_a_newer_python_than_declared():
    """vermin reads every module for the standard library's members, syntax and modules each
    Python version added (tomllib: 3.11, itertools.batched: 3.12, ...): none may be newer than
    requires-python, and the minimum it finds is requires-python's (so the range is not too wide)."""
    major, minor = declared_minimum()
    done = run_tool(
        "vermin", "--no-tips", "--eval-annotations", "--violations", f"-t={major}.{minor}-",
        # bench/results/ (git-ignored) holds the venv agent_footprint.py makes: not our code.
        "--exclude-regex", r"bench/results/", "common", "admin", "desktop_agent", "installers", "bench",
    )  # fmt: skip
    assert done.returncode == 0, f"code that needs a newer Python than {major}.{minor}:\n{done.stdout}\n{done.stderr}"
    found = re.search(
        r"Minimum required versions: (\S+)", run_tool("vermin", "--no-tips", "common", "admin", "desktop_agent").stdout
    )
    assert found and found[1] == f"{major}.{minor}", f"vermin finds {found and found[1]}: is requires-python right?"
