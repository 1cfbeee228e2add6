"""A server with both flags on (one per backend, shared by the module) and helpers that play the
agent's side of PROTOCOL-messages.md with plain HTTP calls."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import httpx
import pytest

from tests.helpers.api import Org
from tests.helpers.servers import BACKENDS, ServerProcess

FLAGS_ON = {"feature_messaging": True, "feature_commands": True}


@pytest.fixture(scope="module", params=BACKENDS)
def msg_server(request, module_server_factory) -> ServerProcess:
    return module_server_factory(request.param, **FLAGS_ON)


@dataclass
class Tenant:
    """An organisation with its keys: `org.api_key` (agent + read), `admin_key`, `read_key`."""

    org: Org
    admin_key: str
    read_key: str

    def machines(self, *names: str) -> list[str]:
        """Machine ids of this test (unique), known to the server through a heartbeat."""
        ids = [f"{name}-{secrets.token_hex(3)}" for name in names]
        for machine_id in ids:
            assert self.org.ping(machine_id).status_code == 200
        return ids

    def send(self, what: str, key: str | None = None, **body: object) -> httpx.Response:
        return self.org.post(f"/api/{what}s", json=body, key=key or self.admin_key)

    def message(self, machine_ids: list[str] | None = None, **body: object) -> str:
        body.setdefault("title", "Reboot tonight")
        resp = self.send("message", **({"machine_ids": machine_ids} if machine_ids else {}), **body)
        assert resp.status_code == 201, resp.text
        return resp.json()["message_id"]

    def command(self, machine_ids: list[str] | None = None, **body: object) -> str:
        body.setdefault("kind", "report_now")
        resp = self.send("command", **({"machine_ids": machine_ids} if machine_ids else {}), **body)
        assert resp.status_code == 201, resp.text
        return resp.json()["command_id"]

    def item(self, what: str, item_id: str) -> dict:
        resp = self.org.get(f"/api/{what}s/{item_id}", key=self.read_key)
        assert resp.status_code == 200, resp.text
        return resp.json()

    def states(self, what: str, item_id: str) -> dict[str, str]:
        return {d["machine_id"]: d["state"] for d in self.item(what, item_id)["deliveries"]}

    # -- the agent's side -------------------------------------------------------------------------
    def inbox(self, machine_id: str, wait: float = 0, key: str | None = None) -> dict:
        resp = self.org.get("/api/agent/inbox", params={"machine_id": machine_id, "wait": wait}, key=key)
        assert resp.status_code == 200, resp.text
        return resp.json()

    def post_state(self, delivery_id: str, machine_id: str, state: str, key: str | None = None, **result):
        body = {"machine_id": machine_id, "state": state, **result}
        return self.org.post(f"/api/agent/deliveries/{delivery_id}", json=body, key=key)

    def delivery_of(self, machine_id: str, item_id: str) -> str:
        """The delivery id of one item in the machine's inbox."""
        for item in self.inbox(machine_id)["items"]:
            if item.get("message", item.get("command", {})).get(f"{item['type']}_id") == item_id:
                return item["delivery_id"]
        raise AssertionError(f"{item_id} is not in {machine_id}'s inbox")


def make_tenant(server: ServerProcess) -> Tenant:
    org = server.org()
    return Tenant(org, server.make_key(org.name, "admin")["api_key"], server.make_key(org.name, "read")["api_key"])


@pytest.fixture(scope="module")
def tenant(msg_server) -> Tenant:
    """One organisation for the module's tests (each uses machines of its own)."""
    return make_tenant(msg_server)
