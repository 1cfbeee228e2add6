"""What may not happen: bad input creates nothing, other organisations see nothing, the wrong keys
act on nothing, cancelled and expired deliveries are never served, flags that are off hide it all."""

from __future__ import annotations

import time

import pytest

from tests.admin.messaging.conftest import FLAGS_ON, make_tenant

BAD_MESSAGES = [
    {},  # no title, no target
    {"title": "x"},  # no target
    {"title": "x", "machine_ids": []},
    {"title": "x", "all": False},
    {"title": "x", "all": "yes"},
    {"title": "x", "all": True, "machine_ids": ["{m}"]},
    {"title": "", "machine_ids": ["{m}"]},
    {"title": "   ", "machine_ids": ["{m}"]},
    {"title": "two\nlines", "machine_ids": ["{m}"]},
    {"title": "x" * 121, "machine_ids": ["{m}"]},
    {"title": 5, "machine_ids": ["{m}"]},
    {"title": "x", "body": "b" * 4001, "machine_ids": ["{m}"]},
    {"title": "x", "body": "nul\x00", "machine_ids": ["{m}"]},
    {"title": "x", "severity": "urgent", "machine_ids": ["{m}"]},
    {"title": "x", "expires_in": 59, "machine_ids": ["{m}"]},
    {"title": "x", "expires_in": 2592001, "machine_ids": ["{m}"]},
    {"title": "x", "expires_in": 600.5, "machine_ids": ["{m}"]},
    {"title": "x", "machine_ids": [""]},
    {"title": "x", "machine_ids": "{m}"},
    {"title": "x", "machine_ids": [5]},
    {"title": "x", "machine_ids": ["{m}"], "colour": "red"},
]
BAD_COMMANDS = [
    {"machine_ids": ["{m}"]},  # no kind
    {"kind": "format_disk", "machine_ids": ["{m}"]},
    {"kind": "run_script", "machine_ids": ["{m}"]},  # no script name
    {"kind": "run_script", "args": {"name": ""}, "machine_ids": ["{m}"]},
    {"kind": "run_script", "args": {"name": "x", "code": "rm -rf /"}, "machine_ids": ["{m}"]},
    {"kind": "run_script", "args": {"name": "x", "args": "--all"}, "machine_ids": ["{m}"]},
    {"kind": "run_script", "args": {"name": "x", "args": [1]}, "machine_ids": ["{m}"]},
    {"kind": "run_script", "args": {"name": "x", "args": ["a"] * 65}, "machine_ids": ["{m}"]},
    {"kind": "report_now", "args": {"now": True}, "machine_ids": ["{m}"]},
    {"kind": "report_now", "args": [], "machine_ids": ["{m}"]},
    {"kind": "report_now", "timeout": 0, "machine_ids": ["{m}"]},
    {"kind": "report_now", "timeout": 901, "machine_ids": ["{m}"]},
    {"kind": "report_now", "expires_in": 9, "machine_ids": ["{m}"]},
    {"kind": "report_now", "expires_in": 86401, "machine_ids": ["{m}"]},
    {"kind": "report_now", "all": True, "machine_ids": ["{m}"]},
]


def _fill(body: dict, machine_id: str) -> dict:
    def one(value):
        if value == "{m}":
            return machine_id
        if isinstance(value, list):
            return [one(v) for v in value]
        return value

    return {k: one(v) for k, v in body.items()}


def _nothing_sent(tenant, machine_id: str) -> None:
    assert tenant.inbox(machine_id)["items"] == [], "a refused request created a delivery"
    for what in ("message", "command"):
        listing = tenant.org.get(f"/api/{what}s", key=tenant.read_key).json()
        assert listing["count"] == 0, f"a refused request created a {what}"


@pytest.fixture(scope="module")
def quiet(msg_server):
    """An organisation that only ever receives refused requests."""
    return make_tenant(msg_server)


@pytest.mark.parametrize("what, body", [("message", b) for b in BAD_MESSAGES] + [("command", b) for b in BAD_COMMANDS])
def test_bad_input_is_refused_and_creates_nothing(quiet, contract, what, body):
    (desk,) = quiet.machines("desk")
    contract.error(quiet.send(what, **_fill(body, desk)), 422)
    _nothing_sent(quiet, desk)


def test_unknown_machines_and_bad_json_create_nothing(quiet, contract):
    (desk,) = quiet.machines("desk")
    body = contract.error(quiet.send("message", title="x", machine_ids=[desk, "no-such-desk", "nor-this"]), 404)
    assert "no-such-desk" in body["error"]
    contract.error(quiet.send("command", kind="report_now", machine_ids=["no-such-desk"]), 404)
    for raw in (b"{", b"[]", b'"x"', b'{"title": NaN, "all": true}'):
        resp = quiet.org.post("/api/messages", content=raw, key=quiet.admin_key)
        contract.error(resp, 400, 422)
    _nothing_sent(quiet, desk)


def test_keys_without_the_admin_scope_cannot_send_or_cancel(tenant, contract):
    (desk,) = tenant.machines("desk")
    message_id = tenant.message([desk])
    for key in (tenant.read_key, tenant.org.api_key):  # read only; agent + read
        contract.error(tenant.send("message", key=key, title="x", machine_ids=[desk]), 403)
        contract.error(tenant.send("command", key=key, kind="report_now", machine_ids=[desk]), 403)
        contract.error(tenant.org.post(f"/api/messages/{message_id}/cancel", key=key), 403)
    contract.unauthorized(tenant.org.post("/api/messages", json={"title": "x", "all": True}, key="api_" + "x" * 40))
    contract.unauthorized(tenant.org.get(f"/api/messages/{message_id}", key="nope"))
    # An admin-only key reads nothing (reading needs 'read'); the agent endpoints need 'agent'.
    contract.error(tenant.org.get(f"/api/messages/{message_id}", key=tenant.admin_key), 403)
    contract.error(tenant.org.get("/api/agent/inbox", params={"machine_id": desk}, key=tenant.read_key), 403)
    assert tenant.states("message", message_id) == {desk: "queued"}


def test_another_organisation_sees_and_changes_nothing(tenant, msg_server, contract):
    (desk,) = tenant.machines("desk")
    message_id = tenant.message([desk])
    command_id = tenant.command([desk])
    delivery = tenant.delivery_of(desk, message_id)
    stranger = make_tenant(msg_server)
    stranger.org.ping(desk)  # the same machine id, in the other organisation

    for what, item_id in (("message", message_id), ("command", command_id)):
        contract.error(stranger.org.get(f"/api/{what}s/{item_id}", key=stranger.read_key), 404)
        contract.error(stranger.org.post(f"/api/{what}s/{item_id}/cancel", key=stranger.admin_key), 404)
        assert stranger.org.get(f"/api/{what}s", key=stranger.read_key).json()["count"] == 0
    assert stranger.inbox(desk)["items"] == []
    contract.error(stranger.post_state(delivery, desk, "delivered"), 404)
    # Sending to our machine id reaches only their own machine of that name.
    sent = stranger.send("message", title="theirs", machine_ids=[desk]).json()
    assert sent["deliveries"] == 1
    assert [i["message"]["title"] for i in tenant.inbox(desk)["items"] if i["type"] == "message"] == ["Reboot tonight"]
    assert tenant.states("message", message_id) == {desk: "queued"}


def test_a_delivery_answers_only_its_own_machine(tenant, contract):
    desk, other = tenant.machines("desk", "desk")
    delivery = tenant.delivery_of(desk, tenant.message([desk]))
    contract.error(tenant.post_state(delivery, other, "delivered"), 404)
    for unknown in ("999999999", "0", "-1", "abc", "1e3", "9" * 30):
        contract.error(tenant.post_state(unknown, desk, "delivered"), 404)
    contract.error(tenant.org.post(f"/api/agent/deliveries/{delivery}", content=b"{", key=None), 400)
    contract.error(tenant.org.post(f"/api/agent/deliveries/{delivery}", json={"state": "delivered"}), 422)
    for params in ({}, {"machine_id": ""}, {"machine_id": desk, "wait": "26"}, {"machine_id": desk, "wait": "x"}):
        contract.error(tenant.org.get("/api/agent/inbox", params=params), 422)
    contract.error(tenant.org.get("/api/agent/inbox", params={"machine_id": desk, "wait": "nan"}), 422)
    assert tenant.inbox(desk)["items"][0]["delivery_id"] == delivery  # still queued


def test_cancel_stops_what_was_not_delivered(tenant, contract):
    desk, other = tenant.machines("desk", "desk")
    command_id = tenant.command([desk, other], kind="restart_agent")
    taken = tenant.delivery_of(desk, command_id)
    waiting = tenant.delivery_of(other, command_id)
    assert tenant.post_state(taken, desk, "delivered").status_code == 200
    resp = tenant.org.post(f"/api/commands/{command_id}/cancel", key=tenant.admin_key)
    assert resp.status_code == 200 and resp.json() == {"cancelled": 1}
    assert tenant.states("command", command_id) == {desk: "delivered", other: "cancelled"}
    assert tenant.inbox(other)["items"] == []
    assert contract.error(tenant.post_state(waiting, other, "delivered"), 409)["state"] == "cancelled"
    assert contract.error(tenant.post_state(waiting, other, "running"), 409)["state"] == "cancelled"
    # Cancelling again cancels nothing more; the delivered one goes on.
    assert tenant.org.post(f"/api/commands/{command_id}/cancel", key=tenant.admin_key).json() == {"cancelled": 0}
    assert tenant.post_state(taken, desk, "running").status_code == 200


def test_deleting_a_machine_cancels_what_waits_for_it(tenant):
    desk, other = tenant.machines("desk", "desk")
    message_id = tenant.message([desk, other])
    resp = tenant.org.request("DELETE", "/api/fleet/machine", params={"machine_id": desk}, key=tenant.admin_key)
    assert resp.status_code == 200
    assert tenant.states("message", message_id) == {desk: "cancelled", other: "queued"}
    # The same id reporting again later does not bring the cancelled delivery back.
    tenant.org.ping(desk)
    assert tenant.inbox(desk)["items"] == []


@pytest.mark.slow
def test_an_expired_delivery_is_never_served_or_run(tenant, contract):
    desk, late, running = tenant.machines("desk", "desk", "desk")
    command_id = tenant.command([desk, late, running], kind="report_now", expires_in=10)
    message_id = tenant.message([desk])  # a week: still served afterwards
    delivery = tenant.delivery_of(desk, command_id)
    late_delivery = tenant.delivery_of(late, command_id)
    running_delivery = tenant.delivery_of(running, command_id)
    assert tenant.post_state(late_delivery, late, "delivered").status_code == 200
    for state in ("delivered", "running"):
        assert tenant.post_state(running_delivery, running, state).status_code == 200
    time.sleep(10.5)
    assert [i["type"] for i in tenant.inbox(desk)["items"]] == ["message"]
    assert tenant.states("command", command_id) == {desk: "expired", late: "expired", running: "running"}
    assert contract.error(tenant.post_state(delivery, desk, "delivered"), 409)["state"] == "expired"
    # Delivered but not started before the expiry: it never runs either.
    assert contract.error(tenant.post_state(late_delivery, late, "running"), 409)["state"] == "expired"
    # What was running finishes and reports.
    assert tenant.post_state(running_delivery, running, "succeeded", exit_code=0).status_code == 200
    assert "inbox" in tenant.org.ping(desk).json()  # the message still waits
    assert tenant.org.post(f"/api/commands/{command_id}/cancel", key=tenant.admin_key).json() == {"cancelled": 0}
    assert tenant.states("message", message_id) == {desk: "queued"}


# -- flags ---------------------------------------------------------------------------------------

FEATURE_PATHS = [
    ("POST", "/api/messages", {"title": "x", "all": True}),
    ("GET", "/api/messages", None),
    ("GET", "/api/messages/0123456789abcdef0123456789abcdef", None),
    ("POST", "/api/messages/0123456789abcdef0123456789abcdef/cancel", None),
    ("POST", "/api/commands", {"kind": "report_now", "all": True}),
    ("GET", "/api/commands", None),
    ("GET", "/api/commands/0123456789abcdef0123456789abcdef", None),
    ("POST", "/api/commands/0123456789abcdef0123456789abcdef/cancel", None),
    ("GET", "/api/agent/inbox?machine_id=desk&wait=5", None),
    ("POST", "/api/agent/deliveries/1", {"machine_id": "desk", "state": "delivered"}),
]


def test_with_the_flags_off_every_path_is_404(server, contract):
    """The shared server runs with both flags off (the default)."""
    org = server.org()
    assert server.http.get("/api/config").json()["FEATURES"] == {
        "messaging": False,
        "commands": False,
        "heartbeat": True,
    }
    for method, path, body in FEATURE_PATHS:
        for kwargs in ({"json": body}, {"content": b"{not json"}, {"key": "nope"}):
            resp = org.request(method, path, **kwargs)
            assert resp.status_code == 404, f"{method} {path} {kwargs}: {resp.status_code} {resp.text}"
            contract.error(resp, 404)
    assert "inbox" not in org.ping("desk").json()


def test_with_one_flag_off_its_items_are_never_served(server_factory, contract):
    node = server_factory("sqlite", **FLAGS_ON)
    tenant = make_tenant(node)
    (desk,) = tenant.machines("desk")
    command_id = tenant.command([desk])
    message_id = tenant.message([desk])
    command_delivery = tenant.delivery_of(desk, command_id)
    node.stop()
    node.env["DASHFLEET_FEATURE_COMMANDS"] = "false"
    node.start()

    answer = tenant.inbox(desk)
    assert answer["features"] == {"messaging": True, "commands": False}
    assert [i["type"] for i in answer["items"]] == ["message"]
    contract.error(tenant.post_state(command_delivery, desk, "delivered"), 404)
    contract.error(tenant.org.get(f"/api/commands/{command_id}", key=tenant.read_key), 404)
    contract.error(tenant.send("command", kind="report_now", all=True), 404)
    assert tenant.item("message", message_id)["deliveries"][0]["state"] == "queued"
    assert tenant.org.ping(desk).json()["inbox"] is True  # for the message


def test_a_machine_bound_key_speaks_only_for_its_own_machine(tenant, msg_server, contract):
    desk, other = tenant.machines("desk", "desk")
    enroll_key = msg_server.make_key(tenant.org.name, "enroll")["api_key"]
    enrolled = tenant.org.post(
        "/api/agent/enroll", json={"machine_id": desk, "hardware_id": "hw-" + desk}, key=enroll_key
    )
    assert enrolled.status_code == 201, enrolled.text
    own_key = enrolled.json()["agent_key"]
    tenant.message([desk, other])
    mine = tenant.inbox(desk, key=own_key)["items"][0]["delivery_id"]
    theirs = tenant.inbox(other)["items"][0]["delivery_id"]  # read with the organisation key
    contract.error(tenant.org.get("/api/agent/inbox", params={"machine_id": other}, key=own_key), 403)
    contract.error(tenant.post_state(theirs, other, "delivered", key=own_key), 403)
    assert tenant.post_state(mine, desk, "delivered", key=own_key).json()["state"] == "delivered"
    # Its own machine's delivery posted under another machine's name: 403 before anything is looked up.
    contract.error(tenant.post_state(mine, other, "displayed", key=own_key), 403)
    # The organisation key keeps working for every machine.
    assert tenant.post_state(theirs, other, "delivered").json()["state"] == "delivered"
