"""Settings: the one source of every server value (API, web UI and background jobs read it).

Read from DASHFLEET_* environment variables and a `.env` file in the working directory.
"""

from __future__ import annotations

import difflib
import secrets
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from common.constants import PING_LIMIT_PER_MINUTE, REPORT_LIMIT_PER_MINUTE, SAMPLE_MIN_SPACING_SECONDS

# Settings that were renamed or replaced: a deployment still setting one is told what to set instead.
REPLACED_SETTINGS = {
    "DASHFLEET_HISTORY_RETENTION_DAYS": "DASHFLEET_HISTORY_RAW_RETENTION_HOURS (raw samples; older history is "
    "kept in 5-minute and hourly buckets: DASHFLEET_HISTORY_5M_RETENTION_DAYS, DASHFLEET_HISTORY_1H_RETENTION_DAYS)",
}


# DASHFLEET_* variables that are not the server's settings: the CLI's password input, and the
# agent's and its installers' (a machine may run both, as the demo does). The server never imports
# the agent, so its names are listed here; tests/admin/test_cli.py fails if the agent gains one.
NOT_SETTINGS = {
    "DASHFLEET_PASSWORD",
    # the agent's settings (desktop_agent/config.py) and its config file's path
    "DASHFLEET_SERVER",
    "DASHFLEET_TOKEN",
    "DASHFLEET_ENROLL_TOKEN",
    "DASHFLEET_MACHINE_ID",
    "DASHFLEET_INTERVAL",
    "DASHFLEET_HEARTBEAT_INTERVAL",
    "DASHFLEET_CA_BUNDLE",
    "DASHFLEET_TRAY",
    "DASHFLEET_DASHBOARD_URL",
    "DASHFLEET_LANGUAGE",
    "DASHFLEET_LOCAL_WARNINGS",
    "DASHFLEET_CONFIG",
    # the installers'
    "DASHFLEET_ENROLL_TOKEN_FILE",
    "DASHFLEET_ALLOW_HTTP",
    "DASHFLEET_AGENT_MODE",
    "DASHFLEET_INSTALL_METHOD",
}


def unknown_setting_warnings(environ: Mapping[str, str]) -> list[str]:
    """One line per DASHFLEET_* variable that is not a setting (a typo, or one that was replaced):
    pydantic-settings ignores those silently, and the server would run with the default."""
    known = {f"DASHFLEET_{name.upper()}" for name in Settings.model_fields}
    lines = []
    for name in sorted(environ):
        if not name.startswith("DASHFLEET_") or name in known or name in NOT_SETTINGS:
            continue
        if name in REPLACED_SETTINGS:
            lines.append(f"{name} is no longer a setting and is ignored: set {REPLACED_SETTINGS[name]}")
        else:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            lines.append(f"{name} is not a setting and is ignored{hint}")
    return lines


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DASHFLEET_", env_file=".env", extra="ignore")

    data_dir: Path = Field(Path("data"), description="SQLite file and the storage secret live here")
    database_url: str = Field("", description="any SQLAlchemy URL; empty means SQLite under data_dir")

    fleet_ttl_seconds: int = Field(86400, gt=0, description="not seen for this long: leaves the fleet")
    offline_after_seconds: int = Field(300, gt=0, description="not seen for this long: status offline")
    refresh_interval_ms: int = Field(5000, ge=500, description="how often the fleet UI refreshes")
    feature_messaging: bool = False
    feature_commands: bool = False

    rate_limit_storage: str = Field("memory://", description="memory:// or redis://host:port/db")
    ping_limit_per_minute: int = Field(PING_LIMIT_PER_MINUTE, ge=1, description="heartbeats per machine")
    report_limit_per_minute: int = Field(REPORT_LIMIT_PER_MINUTE, ge=1, description="reports per machine")
    new_machines_per_minute: int = Field(1000, ge=1, description="new machine ids per organisation per minute")
    machine_quota: int = Field(100_000, ge=1, description="machines per organisation, unless it has its own quota")
    expired_list_max: int = Field(1000, ge=1, description="machine ids named in one listing's `expired`")
    max_body_bytes: int = Field(65536, ge=1024)
    storage_secret: str = Field("", description="signs web sessions; empty: made once under data_dir")

    # History tiers (docs/history.md): raw samples, then 5-minute and hourly buckets that keep each
    # metric's min, max, mean and count, so a peak survives the rollup.
    history_raw_retention_hours: float = Field(48, gt=0, description="raw history samples are kept this long")
    history_5m_retention_days: float = Field(14, gt=0, description="5-minute history buckets are kept this long")
    history_1h_retention_days: float = Field(400, gt=0, description="hourly history buckets are kept this long")
    history_rollup_interval_seconds: float = Field(
        60, gt=0, le=3600, description="period of the background rollup of samples into buckets"
    )
    history_min_spacing_seconds: float = Field(
        SAMPLE_MIN_SPACING_SECONDS, ge=0, le=3600, description="history keeps one sample per machine per this long"
    )
    audit_retention_days: float = Field(365, gt=0, description="audit entries older than this are deleted")
    maintenance_interval_seconds: float = Field(60, gt=0, description="period of the expiry/retention job")
    # Alerts (docs/alerts.md): the offline/pending sweep's period, the notifier's polling period (it
    # is also woken at once by this process's events), the first retry's delay (doubling up to an
    # hour), how long notices for people (e-mail, Apprise) gather before going out as one.
    alert_sweep_seconds: float = Field(5, gt=0, description="period of the offline and pending-alert sweep")
    notifier_interval_seconds: float = Field(2, gt=0, description="how often the outbox is checked")
    alert_retry_seconds: float = Field(10, gt=0, description="first retry of a failed notice; doubles")
    alert_group_seconds: float = Field(10, ge=0, description="notices for people gather this long")
    smtp_host: str = Field("", description="SMTP server for e-mail channels; empty: e-mail is off")
    smtp_port: int = Field(25, gt=0, lt=65536)
    smtp_from: str = "dashfleet@localhost"
    smtp_username: str = ""
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = False
    # Where agents and browsers reach this server, shown in the agent install instructions.
    public_url: str = ""
    # The agent packages GET /downloads/ serves (wheel, .deb, Windows and macOS installers); empty
    # means <data_dir>/downloads. Install links (admin/services/install_links.py) serve from here.
    downloads_dir: Path | None = None
    # Install links over http:// to a host that is not this machine: only when an operator says so
    # (an install script and its enrol key would cross the network in the clear).
    install_links_allow_http: bool = False
    # GET /metrics (the server's own metrics) answers only a Bearer of this token; unset: 404.
    metrics_token: SecretStr | None = None
    # Where the server processes of one host keep their metric values (summed at each scrape).
    metrics_dir: Path | None = Field(None, description="default: data_dir/metrics")
    fleet_metrics_cache_seconds: float = Field(
        5, ge=0, description="GET /api/fleet/metrics is rendered at most this often"
    )
    # Read only by `dashfleet-admin user create`, so scripts need not type it at a prompt.
    password: SecretStr | None = None

    @field_validator("rate_limit_storage")
    @classmethod
    def _known_storage(cls, value: str) -> str:
        if not value.startswith(("memory://", "redis://", "rediss://", "redis+unix://")):
            raise ValueError("use memory:// or a redis:// URL")
        return value

    @field_validator("password", "metrics_token", mode="before")
    @classmethod
    def _empty_password_is_unset(cls, value: object) -> object:
        # DASHFLEET_PASSWORD= (empty) means "not given, ask": as for the agent's empty variables.
        return None if value == "" else value

    @model_validator(mode="after")
    def _offline_before_expiry(self) -> Settings:
        if self.offline_after_seconds >= self.fleet_ttl_seconds:
            raise ValueError(
                f"DASHFLEET_OFFLINE_AFTER_SECONDS ({self.offline_after_seconds}) must be below "
                f"DASHFLEET_FLEET_TTL_SECONDS ({self.fleet_ttl_seconds})"
            )
        return self

    @model_validator(mode="after")
    def _tiers_outlive_their_sources(self) -> Settings:
        # Each tier is built from the one before it: a bucket must outlive what it is made of, or the
        # next tier would be rolled up from a tier already pruned.
        raw, five, hourly = (
            self.history_raw_retention_hours / 24,
            self.history_5m_retention_days,
            self.history_1h_retention_days,
        )
        if not raw <= five <= hourly:
            raise ValueError(
                "history retention must not shrink from tier to tier: DASHFLEET_HISTORY_RAW_RETENTION_HOURS "
                f"({raw * 24:g} h) <= DASHFLEET_HISTORY_5M_RETENTION_DAYS ({five:g} d) <= "
                f"DASHFLEET_HISTORY_1H_RETENTION_DAYS ({hourly:g} d)"
            )
        return self

    @property
    def resolved_metrics_dir(self) -> Path:
        return self.metrics_dir or self.data_dir / "metrics"

    @property
    def sqlalchemy_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'dashfleet.db').resolve()}"

    @field_validator("downloads_dir", mode="before")
    @classmethod
    def _empty_downloads_dir_is_default(cls, value: object) -> object:
        return None if value == "" else value

    @property
    def downloads_path(self) -> Path:
        return self.downloads_dir or self.data_dir / "downloads"

    def resolved_storage_secret(self) -> str:
        """The configured secret, else one made once and kept under data_dir (shared by processes)."""
        if self.storage_secret:
            return self.storage_secret
        path = self.data_dir / "storage_secret"
        if not path.exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            try:
                # O_EXCL: when two processes start together, exactly one writes the secret.
                with open(path, "x", encoding="ascii") as f:
                    f.write(secrets.token_urlsafe(48))
                path.chmod(0o600)
            except FileExistsError:
                pass
        return path.read_text(encoding="ascii").strip()

    def public_config(self) -> dict[str, Any]:
        """What GET /api/config serves and what the web UI reads: one shape, one source."""
        from common.constants import API_VERSION

        return {
            "FLEET_TTL_SECONDS": self.fleet_ttl_seconds,
            "REFRESH_INTERVAL_MS": self.refresh_interval_ms,
            "OFFLINE_AFTER_SECONDS": self.offline_after_seconds,
            "API_VERSION": API_VERSION,
            "FEATURES": {
                "messaging": self.feature_messaging,
                "commands": self.feature_commands,
                "heartbeat": True,
            },
        }


@lru_cache
def get_settings() -> Settings:
    return Settings()
