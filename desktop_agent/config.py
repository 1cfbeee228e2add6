"""The agent's settings: command-line flags, then DASHFLEET_* variables, then a TOML file.

The file is what installers write (docs/agent.md documents its format and search order, and that
page and this module must stay in step). Every value is checked here, once, so that the rest of the
agent can trust its configuration and a mistake is reported as one clear line, never a traceback.
"""

from __future__ import annotations

import os
import socket
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import platformdirs

from common.constants import (
    DEFAULT_HEARTBEAT_INTERVAL_SECONDS,
    DEFAULT_REPORT_INTERVAL_SECONDS,
    MACHINE_ID_MAX_LENGTH,
)

APP_NAME = "dashfleet"
CONFIG_FILE_NAME = "agent.toml"
ENV_PREFIX = "DASHFLEET_"
# Faster than this would run into the server's per-machine limit (120 a minute) with retries.
MIN_INTERVAL_SECONDS = 1.0
MAX_INTERVAL_SECONDS = 86400.0


class ConfigError(ValueError):
    """A setting is missing or wrong; the message is meant for the person who set it."""


@dataclass(frozen=True)
class AgentConfig:
    server: str
    token: str
    machine_id: str
    interval: float = DEFAULT_REPORT_INTERVAL_SECONDS
    heartbeat_interval: float = DEFAULT_HEARTBEAT_INTERVAL_SECONDS
    ca_bundle: str | None = None
    tray: bool = True
    # The tray (issue 15): an end users' dashboard for "Open dashboard" (none: no such entry), the
    # language of the tray's texts ("auto": the OS's), and the local health warnings.
    dashboard_url: str | None = None
    language: str = "auto"
    local_warnings: bool = True
    # An enrol key: with no machine key stored yet, the agent exchanges it for this machine's own
    # key (desktop_agent/credentials.py) and uses only that from then on. `token` may then be empty.
    enroll_token: str | None = None

    def masked(self) -> dict[str, Any]:
        """The settings as a dict that is safe to print or log (the keys are not)."""
        shown = {f.name: getattr(self, f.name) for f in fields(self)}
        shown["token"] = self.token[:8] + "..." if self.token else ""
        shown["enroll_token"] = self.enroll_token[:8] + "..." if self.enroll_token else None
        return shown


KEYS = tuple(f.name for f in fields(AgentConfig))


def config_search_path() -> list[Path]:
    """Where the agent looks for agent.toml when --config is not given, most important first:
    the user's file, then the machine-wide one(s).

    The per-user file lets one person override what the installer wrote machine-wide. On Linux
    every folder of XDG_CONFIG_DIRS counts (desktop sessions often put their own folder before
    /etc/xdg, where installers write).
    """
    user = Path(platformdirs.user_config_dir(APP_NAME, appauthor=False)) / CONFIG_FILE_NAME
    sites = platformdirs.site_config_dir(APP_NAME, appauthor=False, multipath=True).split(os.pathsep)
    return [user, *(Path(site) / CONFIG_FILE_NAME for site in sites if site)]


def default_machine_id() -> str:
    # The hostname is what IT knows a workstation by; it is stable until someone renames it.
    name = socket.gethostname().strip() or "unknown-host"
    return name[:MACHINE_ID_MAX_LENGTH]


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    unknown = sorted(set(data) - set(KEYS))
    if unknown:
        # An older agent must still start with a file written for a newer one, so this is only a
        # warning (logged by the caller), not an error.
        data["_unknown_keys"] = unknown
    return data


def load_files(explicit: str | None) -> tuple[dict[str, Any], list[Path], list[str]]:
    """Merged file settings, the files used, and unknown keys seen (for a warning).

    With --config only that file counts (and it must exist); otherwise the machine-wide file is
    read first and the user's file overrides it key by key.
    """
    if explicit:
        paths = [Path(explicit)]
    else:
        paths = [p for p in reversed(config_search_path()) if p.is_file()]
    merged: dict[str, Any] = {}
    unknown: list[str] = []
    for path in paths:
        data = _read_toml(path)
        unknown += [f"{path}: {key}" for key in data.pop("_unknown_keys", [])]
        merged.update(data)
    return merged, paths, unknown


def load_env(environ: Mapping[str, str]) -> dict[str, str]:
    values = {}
    for key in KEYS:
        raw = environ.get(ENV_PREFIX + key.upper())
        if raw is not None and raw != "":
            values[key] = raw
    return values


# --- checks: each takes the raw value (from a flag, a variable or TOML) and its source name ---


def _check_server(value: Any, source: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{source}: the server URL must be a non-empty string")
    url = value.strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{source}: {url!r} is not a server URL (expected http(s)://host[:port])")
    try:
        parts.port  # noqa: B018 - raises on a port that is not a number or out of range
    except ValueError:
        raise ConfigError(f"{source}: {url!r} has an invalid port") from None
    if parts.query or parts.fragment:
        raise ConfigError(f"{source}: {url!r} must not have a query or fragment")
    return url.rstrip("/")


def _check_token(value: Any, source: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{source}: the API key must be a non-empty string")
    token = value.strip()
    # It goes into an HTTP header: ASCII without spaces, or httpx would fail on every request.
    if not token.isascii() or not token.isprintable() or " " in token:
        raise ConfigError(f"{source}: the API key contains spaces or characters that are not ASCII")
    return token


def _check_machine_id(value: Any, source: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{source}: the machine id must be a non-empty string")
    if len(value) > MACHINE_ID_MAX_LENGTH:
        raise ConfigError(f"{source}: the machine id is longer than {MACHINE_ID_MAX_LENGTH} characters")
    if not value.isprintable():
        raise ConfigError(f"{source}: the machine id must contain printable characters only")
    return value  # kept exactly as given, as the server does


def _check_interval(value: Any, source: str) -> float:
    if isinstance(value, bool):
        raise ConfigError(f"{source}: expected a number of seconds, got {value!r}")
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{source}: expected a number of seconds, got {value!r}") from None
    if not MIN_INTERVAL_SECONDS <= seconds <= MAX_INTERVAL_SECONDS:  # also refuses NaN
        raise ConfigError(
            f"{source}: {value!r} is out of range ({MIN_INTERVAL_SECONDS:g} to {MAX_INTERVAL_SECONDS:g} seconds)"
        )
    return seconds


def _check_ca_bundle(value: Any, source: str) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ConfigError(f"{source}: expected the path of a PEM file")
    path = Path(value).expanduser()
    if not path.is_file():
        raise ConfigError(f"{source}: CA bundle {str(path)!r} is not a readable file")
    import ssl  # httpx loads it anyway; here it tells a wrong file apart before any connection

    try:
        # A bare context: only this file is parsed, not the system's whole CA store as well.
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cafile=str(path))
    except (ssl.SSLError, OSError, ValueError) as exc:
        raise ConfigError(f"{source}: {str(path)!r} holds no usable PEM certificate ({exc})") from None
    return str(path)


def _check_dashboard_url(value: Any, source: str) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ConfigError(f"{source}: expected an http(s):// URL")
    url = value.strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{source}: {url!r} is not a web address (expected http(s)://...)")
    return url


LANGUAGES = ("auto", "en", "fr")


def _check_language(value: Any, source: str) -> str:
    if not isinstance(value, str) or value.strip().lower() not in LANGUAGES:
        raise ConfigError(f"{source}: expected one of {', '.join(LANGUAGES)}, got {value!r}")
    return value.strip().lower()


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _check_bool(value: Any, source: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise ConfigError(f"{source}: expected true or false, got {value!r}")


CHECKS: dict[str, Callable[[Any, str], Any]] = {
    "server": _check_server,
    "token": _check_token,
    "machine_id": _check_machine_id,
    "interval": _check_interval,
    "heartbeat_interval": _check_interval,
    "ca_bundle": _check_ca_bundle,
    "tray": _check_bool,
    "dashboard_url": _check_dashboard_url,
    "language": _check_language,
    "local_warnings": _check_bool,
    "enroll_token": _check_token,
}
assert set(CHECKS) == set(KEYS), "every setting needs a check"

_FLAG_NAMES = {key: "--" + key.replace("_", "-") for key in KEYS}

# TOML has types, so the file's values must have the documented one: numbers bare, `tray` a
# boolean. A quoted "60" or "yes" there is a mistake (the checks above parse strings only because
# flags and environment variables are always strings). The string keys' checks refuse non-strings.
_FILE_TYPES: dict[str, tuple[tuple[type, ...], str]] = {
    "interval": ((int, float), "a number of seconds"),
    "heartbeat_interval": ((int, float), "a number of seconds"),
    "tray": ((bool,), "true or false"),
    "local_warnings": ((bool,), "true or false"),
}


def _check_file_type(key: str, value: Any, source: str) -> Any:
    if key not in _FILE_TYPES:
        return value
    types, expected = _FILE_TYPES[key]
    if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
        raise ConfigError(f"{source}: expected {expected}, written without quotes, got {value!r}")
    return value


def resolve(
    flags: Mapping[str, Any],
    environ: Mapping[str, str] | None = None,
    config_file: str | None = None,
) -> tuple[AgentConfig, list[str]]:
    """The effective settings (flags > environment > file) and warnings worth logging.

    `flags` holds only the options given on the command line (None means not given).
    """
    environ = os.environ if environ is None else environ
    config_file = config_file or environ.get(ENV_PREFIX + "CONFIG") or None
    file_values, paths, unknown = load_files(config_file)
    file_source = ", ".join(str(p) for p in paths) or "config file"
    env_values = load_env(environ)
    warnings = [f"unknown setting in config file {u} (ignored)" for u in unknown]

    chosen: dict[str, Any] = {}
    for key in KEYS:
        if flags.get(key) is not None:
            raw, source = flags[key], _FLAG_NAMES[key]
        elif key in env_values:
            raw, source = env_values[key], ENV_PREFIX + key.upper()
        elif key in file_values:
            source = f"{file_source} ({key})"
            raw = _check_file_type(key, file_values[key], source)
        else:
            continue
        chosen[key] = CHECKS[key](raw, source)

    where = "give --{flag}, set " + ENV_PREFIX + "{env}, or put {key} = ... in " + CONFIG_FILE_NAME
    if "server" not in chosen:
        raise ConfigError(f"no server URL configured: {where.format(flag='server', env='SERVER', key='server')}")
    if "token" not in chosen and "enroll_token" not in chosen:
        hint = where.format(flag="enroll-token-file", env="ENROLL_TOKEN", key="enroll_token")
        raise ConfigError(f"no API key configured: {hint} (or give an organisation key as token)")
    chosen.setdefault("token", "")
    chosen.setdefault("machine_id", default_machine_id())
    if (warning := _plain_http_warning(chosen["server"])) is not None:
        warnings.append(warning)
    return AgentConfig(**chosen), warnings


def _plain_http_warning(server: str) -> str | None:
    """The installers refuse http:// unless told explicitly (docs/security.md, finding 15); an agent
    configured by hand still accepts it, so existing set-ups keep working, but says so at every
    start. The machine itself (a test server, an SSH tunnel) is no network to cross."""
    parts = urlsplit(server)
    if parts.scheme != "http" or parts.hostname in ("localhost", "127.0.0.1", "::1"):
        return None
    return (
        f"{server} is plain http://: the key and every report cross the network unencrypted "
        "(use the server's https:// address)"
    )
