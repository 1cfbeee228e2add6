"""GET /api/status and GET /api/config: public, and /api/config follows the one settings object."""

import re

from common.constants import API_VERSION
from common.version import __version__


def test_status_answers_ok_with_the_version(server):
    resp = server.http.get("/api/status")
    assert resp.status_code == 200
    assert resp.json() == {"status": "ok", "version": __version__}


def test_config_has_the_contract_shape_and_defaults(server):
    resp = server.http.get("/api/config")
    assert resp.status_code == 200
    config = resp.json()
    assert set(config) >= {"FLEET_TTL_SECONDS", "REFRESH_INTERVAL_MS", "API_VERSION", "FEATURES"}
    assert config["FLEET_TTL_SECONDS"] == 86400 and type(config["FLEET_TTL_SECONDS"]) is int
    assert config["REFRESH_INTERVAL_MS"] == 5000 and type(config["REFRESH_INTERVAL_MS"]) is int
    assert re.fullmatch(r"\d+\.\d+\.\d+", config["API_VERSION"])
    assert config["API_VERSION"] == API_VERSION
    # The server takes heartbeats, so it says so; the two feature flags are off by default.
    assert config["FEATURES"] == {"messaging": False, "commands": False, "heartbeat": True}


def test_config_follows_the_settings(tuned_server):
    # tuned_server: FLEET_TTL_SECONDS=1234, REFRESH_INTERVAL_MS=750, both feature flags on.
    config = tuned_server.http.get("/api/config").json()
    assert config["FLEET_TTL_SECONDS"] == 1234
    assert config["REFRESH_INTERVAL_MS"] == 750
    assert config["FEATURES"] == {"messaging": True, "commands": True, "heartbeat": True}
