"""Fixtures of the alert tests: a server with short alert periods, real webhook and SMTP receivers."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.admin.alerts.receivers import SmtpReceiver, WebhookReceiver
from tests.helpers.api import Org
from tests.helpers.servers import ServerProcess

# Short periods, so an alert that becomes due is posted well within the contract's 15 s.
FAST = {
    "offline_after_seconds": 2,
    "alert_sweep_seconds": 0.3,
    "notifier_interval_seconds": 0.3,
    "alert_retry_seconds": 0.5,
    "alert_group_seconds": 1,
}


@pytest.fixture(scope="module")
def webhook() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    yield receiver
    receiver.close()


@pytest.fixture(scope="module")
def smtp() -> Iterator[SmtpReceiver]:
    receiver = SmtpReceiver()
    yield receiver
    receiver.close()


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def alerting(request, module_server_factory, smtp) -> ServerProcess:
    """One server per backend for the module, with fast alert settings and an SMTP server."""
    return module_server_factory(request.param, smtp_host="127.0.0.1", smtp_port=smtp.port, **FAST)


@dataclass
class AlertOrg:
    """An organisation with keys of each scope, and helpers for its alert API."""

    org: Org  # agent + read
    admin_key: str  # admin + read

    def admin(self, method: str, path: str, **kwargs: Any):
        return self.org.request(method, path, key=self.admin_key, **kwargs)

    def channel(self, **body: Any) -> int:
        resp = self.admin("POST", "/api/alerts/channels", json=body)
        assert resp.status_code == 201, resp.text
        return resp.json()["channel_id"]

    def rule(self, **body: Any) -> int:
        resp = self.admin("POST", "/api/alerts/rules", json=body)
        assert resp.status_code == 201, resp.text
        return resp.json()["rule_id"]

    def firing(self, **params: Any) -> list[dict]:
        resp = self.org.get("/api/alerts", params=params)
        assert resp.status_code == 200, resp.text
        return resp.json()["data"]

    def wait_state(self, machine_id: str, state: str | None, timeout: float = 15) -> list[dict]:
        """Waits until the machine's alert is in `state` (None: no alert listed)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.firing(machine_id=machine_id)
            if (state is None and not found) or (state is not None and [a["state"] for a in found] == [state]):
                return found
            time.sleep(0.1)
        raise AssertionError(f"{machine_id}: wanted {state}, have {self.firing(machine_id=machine_id)}")


def make_alert_org(server: ServerProcess) -> AlertOrg:
    org = server.org()
    return AlertOrg(org, server.make_key(org.name, "admin", "read")["api_key"])


@pytest.fixture
def alert_org(alerting) -> AlertOrg:
    return make_alert_org(alerting)
