"""Every delivery state reached over HTTP, the agent's side played by plain protocol calls."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

MESSAGE_PATH = ["delivered", "displayed", "acknowledged"]


def test_a_message_goes_queued_delivered_displayed_acknowledged(tenant):
    one, two = tenant.machines("desk", "desk")
    message_id = tenant.message(
        [one, two], title="Reboot tonight", body="Save your work <b>now</b>", severity="warning"
    )
    assert tenant.states("message", message_id) == {one: "queued", two: "queued"}

    items = tenant.inbox(one)["items"]
    assert len(items) == 1
    item = items[0]
    assert item["type"] == "message" and item["expires"] > time.time()
    assert item["message"]["message_id"] == message_id
    assert item["message"]["title"] == "Reboot tonight"
    assert item["message"]["body"] == "Save your work <b>now</b>"  # as sent: the agent shows text
    assert item["message"]["severity"] == "warning"
    for state in MESSAGE_PATH:
        resp = tenant.post_state(item["delivery_id"], one, state)
        assert resp.status_code == 200 and resp.json() == {"ok": True, "state": state}
        assert tenant.states("message", message_id) == {one: state, two: "queued"}
    # Serving it changed nothing for the other machine, and an acknowledged item is not served again.
    assert tenant.inbox(one)["items"] == []
    assert len(tenant.inbox(two)["items"]) == 1

    shown = tenant.item("message", message_id)
    assert shown["title"] == "Reboot tonight" and shown["severity"] == "warning"
    assert shown["expires"] - shown["created"] == 604800
    assert shown["progress"] == {"total": 2, "delivered": 1, "done": 1}
    delivery = {d["machine_id"]: d for d in shown["deliveries"]}[one]
    assert delivery["delivered_at"] is not None and delivery["updated"] >= delivery["delivered_at"]


def test_moves_go_forward_only_and_a_repeat_is_harmless(tenant, contract):
    (desk,) = tenant.machines("desk")
    tenant.message([desk])
    delivery = tenant.inbox(desk)["items"][0]["delivery_id"]
    # Skipping forward is allowed (delivered -> acknowledged), a retried post answers the same.
    assert tenant.post_state(delivery, desk, "delivered").status_code == 200
    assert tenant.post_state(delivery, desk, "delivered").json() == {"ok": True, "state": "delivered"}
    assert tenant.post_state(delivery, desk, "acknowledged").status_code == 200
    back = tenant.post_state(delivery, desk, "displayed")
    assert contract.error(back, 409)["state"] == "acknowledged"
    # A state an agent never posts for a message, and a command's result on a message: refused.
    for state in ("running", "succeeded", "expired", "cancelled", "queued", "bogus"):
        contract.error(tenant.post_state(delivery, desk, state), 422)
    contract.error(tenant.post_state(delivery, desk, "acknowledged", exit_code=0), 422)


def test_a_command_runs_and_reports_its_result(tenant, contract):
    desk, other = tenant.machines("desk", "desk")
    command_id = tenant.command([desk, other], kind="run_script", args={"name": "cleanup", "args": ["--all"]})
    item = tenant.inbox(desk)["items"][0]
    assert item["type"] == "command"
    assert item["command"] == {
        "command_id": command_id,
        "kind": "run_script",
        "args": {"name": "cleanup", "args": ["--all"]},
        "timeout": 60,
        "created": item["command"]["created"],
    }
    delivery = item["delivery_id"]
    # exit_code comes only with a final state; a command cannot succeed before it ran.
    contract.error(tenant.post_state(delivery, desk, "delivered", exit_code=0), 422)
    assert contract.error(tenant.post_state(delivery, desk, "succeeded", exit_code=0), 409)["state"] == "queued"
    for state in ("delivered", "running"):
        assert tenant.post_state(delivery, desk, state).json()["state"] == state
        assert tenant.states("command", command_id)[desk] == state
    done = tenant.post_state(delivery, desk, "succeeded", exit_code=0, output="removed 3 files\n<script>x</script>")
    assert done.status_code == 200
    shown = {d["machine_id"]: d for d in tenant.item("command", command_id)["deliveries"]}
    assert shown[desk]["state"] == "succeeded" and shown[desk]["exit_code"] == 0
    assert shown[desk]["output"] == "removed 3 files\n<script>x</script>" and shown[desk]["output_cut"] is False
    assert shown[other]["state"] == "queued" and shown[other]["exit_code"] is None

    # The other machine refuses it before running (delivered -> failed), with the reason.
    other_delivery = tenant.inbox(other)["items"][0]["delivery_id"]
    assert tenant.post_state(other_delivery, other, "delivered").status_code == 200
    refused = tenant.post_state(other_delivery, other, "failed", output="not in the allow-list: cleanup")
    assert refused.json()["state"] == "failed"
    # No way back from a final state.
    assert contract.error(tenant.post_state(other_delivery, other, "running"), 409)["state"] == "failed"


def test_a_command_can_time_out_and_long_output_keeps_its_end(tenant):
    (desk,) = tenant.machines("desk")
    command_id = tenant.command([desk], kind="run_script", args={"name": "slow"}, timeout=5)
    delivery = tenant.inbox(desk)["items"][0]["delivery_id"]
    for state in ("delivered", "running"):
        assert tenant.post_state(delivery, desk, state).status_code == 200
    # 100 KiB of output with quotes and newlines, escaped in JSON: more than 64 KiB arrives; the end is kept.
    output = "".join(f'line {n} "quoted"\n' for n in range(5000)) + "THE END"
    resp = tenant.post_state(delivery, desk, "timed_out", exit_code=-9, output=output)
    assert resp.status_code == 200, resp.text
    shown = tenant.item("command", command_id)["deliveries"][0]
    assert shown["state"] == "timed_out" and shown["exit_code"] == -9
    assert shown["output_cut"] is True
    assert shown["output"].endswith("THE END") and len(shown["output"].encode()) <= 64 * 1024
    assert shown["output"].startswith("[output cut")


def test_a_waiting_inbox_returns_as_soon_as_an_item_is_sent(tenant):
    (desk,) = tenant.machines("desk")
    with ThreadPoolExecutor(1) as pool:
        started = time.monotonic()
        waiting = pool.submit(tenant.inbox, desk, 20)
        time.sleep(1.0)
        assert not waiting.done()  # nothing queued: the request is held
        message_id = tenant.message([desk])
        items = waiting.result(timeout=19)["items"]
        took = time.monotonic() - started
    assert [i["message"]["message_id"] for i in items] == [message_id]
    assert took < 15, f"the held request returned after {took:.1f} s, not when the message was sent"


def test_an_empty_inbox_waits_then_answers_empty(tenant):
    (desk,) = tenant.machines("desk")
    started = time.monotonic()
    answer = tenant.inbox(desk, wait=1.5)
    assert answer == {"items": [], "features": {"messaging": True, "commands": True}}
    assert time.monotonic() - started >= 1.4
    # A machine never seen gets an empty inbox and is not created.
    assert tenant.inbox("never-seen-machine")["items"] == []
    assert "never-seen-machine" not in tenant.org.machine_ids(q="never-seen")


def test_the_heartbeat_says_when_something_waits(tenant):
    desk, other = tenant.machines("desk", "desk")
    assert "inbox" not in tenant.org.ping(desk).json()
    message_id = tenant.message([desk])
    assert tenant.org.ping(desk).json()["inbox"] is True
    assert "inbox" not in tenant.org.ping(other).json()
    delivery = tenant.delivery_of(desk, message_id)
    assert tenant.post_state(delivery, desk, "delivered").status_code == 200
    deadline = time.monotonic() + 10  # the hint is cached per organisation for up to 2 s
    while "inbox" in tenant.org.ping(desk).json():
        assert time.monotonic() < deadline, "the hint stayed after the delivery left the queue"
        time.sleep(0.5)


def test_all_means_every_machine_of_the_organisation_now(tenant, msg_server):
    other = msg_server.org()
    other.ping("not-ours")
    before = tenant.org.fleet(limit=1000)["count"]
    resp = tenant.send("command", kind="refresh_config", all=True)
    assert resp.status_code == 201
    assert resp.json()["deliveries"] == before
    shown = tenant.item("command", resp.json()["command_id"])
    assert len(shown["deliveries"]) == before and shown["all"] is True
    assert "not-ours" not in {d["machine_id"] for d in shown["deliveries"]}


def test_the_inbox_serves_oldest_first_and_items_in_order(tenant):
    (desk,) = tenant.machines("desk")
    first = tenant.message([desk], title="first")
    second = tenant.command([desk], kind="restart_agent")
    third = tenant.message([desk], title="third")
    items = tenant.inbox(desk)["items"]
    ids = [i.get("message", i.get("command"))[f"{i['type']}_id"] for i in items]
    assert ids == [first, second, third]


def test_listings_show_progress_newest_first(tenant):
    desk, other = tenant.machines("desk", "desk")
    message_id = tenant.message([desk, other], title="progress")
    delivery = tenant.delivery_of(desk, message_id)
    tenant.post_state(delivery, desk, "acknowledged")
    listing = tenant.org.get("/api/messages", params={"limit": 5}, key=tenant.read_key).json()
    newest = listing["data"][0]
    assert newest["message_id"] == message_id
    assert newest["counts"] == {"acknowledged": 1, "queued": 1}
    assert newest["progress"] == {"total": 2, "delivered": 1, "done": 1}
    assert listing["count"] >= 1 and "deliveries" not in newest
