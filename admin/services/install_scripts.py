"""The install scripts an install link serves, made from the templates in admin/install_templates/.

Every value goes into a template through `sh_quote` (shlex.quote) or `ps_quote` (a PowerShell
single-quoted string), here and nowhere else, so no value can end a string and become code. A
template marks each place as `@NAME@`; rendering fails when one is left unfilled.
"""

from __future__ import annotations

import json
import re
import shlex
from functools import cache
from importlib import resources

from admin.services.downloads import Package
from common.version import __version__

_PLACEHOLDER = re.compile(r"@[A-Z0-9_]+@")


def sh_quote(value: str) -> str:
    return shlex.quote(value)


def ps_quote(value: str) -> str:
    """A PowerShell verbatim string: nothing inside is expanded; a quote is doubled. PowerShell
    also takes the typographic single quotes as quotes, so those are doubled too."""
    for quote in ("'", "\u2018", "\u2019", "\u201a", "\u201b"):
        value = value.replace(quote, quote * 2)
    return f"'{value}'"


def toml_string(value: str) -> str:
    """A TOML basic string. JSON's escapes are TOML's, for the printable ASCII we allow."""
    if not value.isascii() or not value.isprintable():
        raise ValueError(f"not printable ASCII: {value!r}")
    return json.dumps(value)


@cache
def _template(name: str) -> str:
    return resources.files("admin").joinpath("install_templates", name).read_text(encoding="utf-8")


def _render(name: str, values: dict[str, str]) -> str:
    text = _template(name)
    for key, quoted in values.items():
        text = text.replace(f"@{key}@", quoted)
    left = _PLACEHOLDER.search(text)
    if left:
        raise ValueError(f"{name}: {left.group()} was not filled")
    return text


def config_lines(server: str, enroll_key: str) -> list[str]:
    return [f"server = {toml_string(server)}", f"enroll_token = {toml_string(enroll_key)}"]


def _sh_case_arms(packages: list[Package]) -> str:
    arms = []
    for package in packages:
        if package.kind in ("deb", "wheel", "macos"):
            arms.append(
                f"        {sh_quote(f'{package.kind} {package.arch}')}) "
                f"PKG_NAME={sh_quote(package.name)}; PKG_SHA256={sh_quote(package.sha256)} ;;"
            )
    return "\n".join(arms)


def shell_script(*, server: str, enroll_key: str, packages: list[Package]) -> str:
    """The Linux and macOS script; `packages` are this server's own version's."""
    return _render(
        "install.sh",
        {
            "SERVER": sh_quote(server),
            "VERSION": sh_quote(__version__),
            "CONFIG_LINES": sh_quote("\n".join(config_lines(server, enroll_key))),
            "PACKAGES": _sh_case_arms(packages),
        },
    )


def powershell_script(*, server: str, enroll_key: str, packages: list[Package]) -> str:
    setup = next((p for p in packages if p.kind == "windows"), None)
    return _render(
        "install.ps1",
        {
            "SERVER": ps_quote(server),
            "VERSION": ps_quote(__version__),
            "SETUP_NAME": ps_quote(setup.name if setup else ""),
            "SETUP_SHA256": ps_quote(setup.sha256 if setup else ""),
            # The setup writes agent.toml itself (after securing its folder), from these two.
            "ENROLL_KEY": ps_quote(enroll_key),
        },
    )


REFUSALS = {
    "unknown": "this install link does not exist (check that it was copied whole, or ask for a new one)",
    "expired": "this install link has expired: ask your DashFleet administrator for a new one",
    "used up": "this install link has been used as many times as it allows: ask your DashFleet administrator for a new one",
    "revoked": "this install link was revoked: ask your DashFleet administrator for a new one",
    "no public url": "this server has no public URL set (DASHFLEET_PUBLIC_URL), so it cannot serve install scripts",
}


def refusal_script(reason: str, *, powershell: bool) -> str:
    message = REFUSALS[reason]
    if powershell:
        return _render("refused.ps1", {"MESSAGE": ps_quote(f"DashFleet: {message}.")})
    return _render("refused.sh", {"MESSAGE": sh_quote(message)})
