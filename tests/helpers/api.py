"""Talking to a running server's API as its clients do: sample reports, an organisation's calls,
and the checks of what CONTRACT.md promises every answer."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import httpx
import pytest

if TYPE_CHECKING:
    from tests.helpers.servers import ServerProcess


def sample_report(
    cpu_percent: float = 12.5, ram_percent: float = 40.0, disk_percent: float = 55.0, **fields: object
) -> dict:
    """A report as the agent sends it; `system=...` and any extra field may be given."""
    report = {
        "cpu_percent": cpu_percent,
        "ram_percent": ram_percent,
        "disk_percent": disk_percent,
        "timestamp": "2026-01-02T15:30:45+00:00",
        "ram_used_gib": 6.2,
        "ram_total_gib": 16.0,
        "disk_used_gib": 120.5,
        "disk_total_gib": 512.0,
        "uptime_seconds": 3723,
        "uptime_hms": "01:02:03",
        "health": {"score": 80, "status": "ok", "reasons": []},
        "system": {"os": "Linux", "os_version": "6.1.0", "hostname": "test-host"},
    }
    report.update(fields)
    return report


@dataclass
class Org:
    """An organisation on a running server, with its full-scope key (agent + read)."""

    server: ServerProcess
    name: str
    api_key: str
    _auth: dict = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._auth = bearer(self.api_key)

    def via(self, server: ServerProcess) -> Org:
        """The same organisation reached through another server process of the same deployment."""
        return Org(server=server, name=self.name, api_key=self.api_key)

    def request(self, method: str, path: str, *, key: str | None = None, **kwargs) -> httpx.Response:
        headers = {**(bearer(key) if key is not None else self._auth), **kwargs.pop("headers", {})}
        return self.server.http.request(method, path, headers=headers, **kwargs)

    def get(self, path: str, **kwargs) -> httpx.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs) -> httpx.Response:
        return self.request("POST", path, **kwargs)

    def report(self, machine_id: object, report: dict | None = None, **kwargs) -> httpx.Response:
        body = {"machine_id": machine_id, "report": sample_report() if report is None else report}
        return self.post("/api/fleet/report", json=body, **kwargs)

    def ping(
        self, machine_id: object, headers: dict | None = None, key: str | None = None, **fields: object
    ) -> httpx.Response:
        return self.post("/api/fleet/ping", json={"machine_id": machine_id, **fields}, headers=headers or {}, key=key)

    def fleet(self, **params: object) -> dict:
        """GET /api/fleet, which must succeed."""
        resp = self.get("/api/fleet", params=params)
        assert resp.status_code == 200, f"GET /api/fleet {params}: {resp.status_code} {resp.text}"
        return resp.json()

    def machine_ids(self, **params: object) -> list[str]:
        return [machine["machine_id"] for machine in self.fleet(**params)["data"]]

    def machine(self, machine_id: str) -> dict:
        """The listing's entry for one machine (fails if it is not listed)."""
        matches = [m for m in self.fleet(q=machine_id, limit=1000)["data"] if m["machine_id"] == machine_id]
        assert len(matches) == 1, f"{machine_id!r} listed {len(matches)} times"
        return matches[0]

    def assert_empty(self) -> None:
        """Nothing stored: the organisation's fleet has no machine."""
        listing = self.fleet()
        assert listing["count"] == 0 and listing["data"] == [], f"something was stored: {listing}"


def bearer(api_key: str) -> dict:
    return {"Authorization": f"Bearer {api_key}"}


class Contract:
    """Checks of what CONTRACT.md promises every answer, shared by the test files (`contract`)."""

    sample_report = staticmethod(sample_report)

    @staticmethod
    def error(resp: httpx.Response, *statuses: int) -> dict:
        """One of `statuses`, with a JSON body {"error": "<clear message>"}."""
        assert resp.status_code in statuses, f"expected {statuses}, got {resp.status_code}: {resp.text[:500]}"
        try:
            body = resp.json()
        except ValueError:
            pytest.fail(f"error body is not JSON: {resp.text[:500]!r}")
        assert isinstance(body, dict) and isinstance(body.get("error"), str) and body["error"].strip(), (
            f"error body lacks a clear 'error' message: {body}"
        )
        return body

    @staticmethod
    def unauthorized(resp: httpx.Response) -> None:
        """401 with exactly {"error": "Unauthorized"}: no data, no hint of what exists."""
        assert resp.status_code == 401, f"expected 401, got {resp.status_code}: {resp.text[:500]}"
        assert resp.json() == {"error": "Unauthorized"}

    @classmethod
    def rate_limited(cls, resp: httpx.Response) -> None:
        """429 with an error body and a Retry-After of seconds or an HTTP date."""
        cls.error(resp, 429)
        retry_after = resp.headers.get("Retry-After")
        assert retry_after, "429 without a Retry-After header"
        if retry_after.isdigit():
            assert int(retry_after) > 0
        else:
            from email.utils import parsedate_to_datetime

            assert parsedate_to_datetime(retry_after), f"bad Retry-After {retry_after!r}"
