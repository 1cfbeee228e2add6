"""Static checks of the install scripts, shared by the test files: `sh -n` and ShellCheck (Debian's
`shellcheck`) for the shell scripts, and a PowerShell parser for the Windows ones.

There is no PowerShell on this machine (`pwsh` is not in Debian, and its npm and PyPI wrappers
download Microsoft's binaries at install time, which cannot work here). The PowerShell grammar of
tree-sitter (PyPI `tree-sitter-powershell`) parses the scripts instead: it finds syntax errors, and
tells which string literals a script holds, so a test can check that a value stayed one string. It
is not PSScriptAnalyzer: it does not know cmdlets or their parameters.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest


def assert_shell_script_is_clean(script: str, tmp_path: Path, *, allow: tuple[str, ...] = ()) -> None:
    """`sh -n` (and bash, dash) and ShellCheck at every severity; `allow` names checks to skip."""
    path = tmp_path / "script.sh"
    path.write_text(script)
    for shell in ("sh", "bash", "dash"):
        if shutil.which(shell):
            parsed = subprocess.run([shell, "-n", str(path)], capture_output=True, text=True, timeout=30)
            assert parsed.returncode == 0, f"{shell} -n: {parsed.stderr}"
    if not shutil.which("shellcheck"):
        pytest.fail("shellcheck is missing: `make sysdeps` installs it (Debian package shellcheck)")
    excluded = [f"--exclude={','.join(allow)}"] if allow else []
    checked = subprocess.run(
        ["shellcheck", "-s", "sh", *excluded, str(path)], capture_output=True, text=True, timeout=60
    )
    assert checked.returncode == 0, f"ShellCheck:\n{checked.stdout}"


def assert_powershell_parses(script: str) -> list[str]:
    """Fails on a syntax error; returns the source text of every string literal."""
    import tree_sitter
    import tree_sitter_powershell

    parser = tree_sitter.Parser(tree_sitter.Language(tree_sitter_powershell.language()))
    source = script.encode()
    tree = parser.parse(source)
    errors = []
    strings = []
    stack = [tree.root_node]
    while stack:
        node = stack.pop()
        if node.type == "ERROR" or node.is_missing:
            line = node.start_point[0]
            errors.append(f"line {line + 1}: {script.splitlines()[line] if script.splitlines() else ''}")
        if node.type == "string_literal":
            strings.append(source[node.start_byte : node.end_byte].decode())
        stack.extend(node.children)
    assert not errors, "PowerShell syntax errors:\n" + "\n".join(errors)
    return strings
