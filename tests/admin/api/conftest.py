"""Fixtures of the API tests (the shared ones, `server`, `org`, `contract`, are in tests/conftest.py)."""

import pytest


@pytest.fixture(scope="module")
def quarantine(server):
    """An organisation of the module's that only ever receives bad input: it must stay empty.

    Tests also check it right after each bad request; this last check catches a late write.
    """
    org = server.org()
    yield org
    org.assert_empty()


# Every non-default setting that only changes answers (not timing) on one server, started once.
TUNED_SETTINGS = {
    "fleet_ttl_seconds": 1234,
    "refresh_interval_ms": 750,
    "feature_messaging": True,
    "feature_commands": True,
    "max_body_bytes": 1024,
}


@pytest.fixture(scope="session")
def tuned_server(session_server_factory):
    return session_server_factory("sqlite", **TUNED_SETTINGS)
