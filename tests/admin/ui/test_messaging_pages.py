"""The web UI of messages and commands (NiceGUI's `user` fixture): the machine page's panels, the
fleet page's send to a selection or a filter, the recent items page and one item's deliveries.
Admins send and cancel; viewers see; with the flags off none of it is there."""

from __future__ import annotations

import asyncio

import pytest
from nicegui import ui
from nicegui.testing import User

from admin.services.messaging import MessageIn, StateIn
from tests.helpers.ui import add_report, make_account, sign_in

XSS = "<img src=x onerror=alert(1)>"


@pytest.fixture
def flags_on(services) -> None:
    services.settings.feature_messaging = True
    services.settings.feature_commands = True


def page_of(machine_id: str) -> str:
    from urllib.parse import quote

    return "/machine?id=" + quote(machine_id, safe="")


def deliveries(services, account, machine_id: str, item_type: str) -> list[dict]:
    return services.messaging.machine_deliveries(org_id=account.org_id, machine_id=machine_id, item_type=item_type)


async def until(check, attempts: int = 100) -> None:
    for _ in range(attempts):
        if check():
            return
        await asyncio.sleep(0.05)
    assert check()


async def test_flags_off_nothing_is_there(admin: User, services, admin_account) -> None:
    await add_report(services, admin_account, "pc-1")
    await admin.open(page_of("pc-1"))
    await admin.should_see(marker="machine-id")
    for marker in ("feature-messaging", "feature-commands", "nav-messages", "send-message"):
        await admin.should_not_see(marker=marker)
    await admin.open("/")
    await admin.should_not_see(marker="send-selected")


async def test_an_admin_sends_a_message_from_the_machine_page_and_sees_it_change(
    admin: User, services, admin_account, flags_on
) -> None:
    await add_report(services, admin_account, "pc-1")
    await admin.open(page_of("pc-1"))
    await admin.should_see("Messages to this machine")
    await admin.should_see("Commands to this machine")
    admin.find(marker="message-title").type(XSS)
    admin.find(marker="message-body").type("Save your work.\nThanks")
    admin.find(marker="send-message").click()
    await admin.should_see("Sent to 1 machine.")
    await until(lambda: len(deliveries(services, admin_account, "pc-1", "message")) == 1)
    entry = deliveries(services, admin_account, "pc-1", "message")[0]
    assert entry["title"] == XSS and entry["state"] == "queued" and entry["body"] == "Save your work.\nThanks"
    await admin.should_see(XSS)  # as text: a label, never HTML
    await admin.should_see("queued")
    # The agent takes it: the panel shows the new state by itself (its timer re-reads).
    services.messaging.post_state(
        org_id=admin_account.org_id,
        delivery_id=entry["delivery_id"],
        state=StateIn(machine_id="pc-1", state="displayed"),
    )
    await admin.should_see("displayed", retries=100)


async def test_a_command_with_output_shows_it_as_text(admin: User, services, admin_account, flags_on) -> None:
    await add_report(services, admin_account, "pc-1")
    await admin.open(page_of("pc-1"))
    admin.find(marker="command-kind").elements.pop().value = "run_script"
    admin.find(marker="command-script").type("cleanup")
    admin.find(marker="command-args").type("--all\n--quiet")
    admin.find(marker="send-command").click()
    await admin.should_see("Sent to 1 machine.")
    entry = deliveries(services, admin_account, "pc-1", "command")[0]
    assert entry["kind"] == "run_script" and entry["args"] == {"name": "cleanup", "args": ["--all", "--quiet"]}
    for state in ("delivered", "running"):
        services.messaging.post_state(
            org_id=admin_account.org_id,
            delivery_id=entry["delivery_id"],
            state=StateIn(machine_id="pc-1", state=state),
        )
    output = "\n".join(f"line {n}" for n in range(300)) + "\n<b>not bold</b>"
    services.messaging.post_state(
        org_id=admin_account.org_id,
        delivery_id=entry["delivery_id"],
        state=StateIn(machine_id="pc-1", state="succeeded", exit_code=0, output=output),
    )
    await admin.should_see("succeeded", retries=100)
    await admin.should_see("Output (exit code 0)")
    shown = admin.find(marker="command-output").elements.pop()
    assert isinstance(shown, ui.label) and shown.text == output


async def test_a_bad_command_is_refused_in_the_page_and_nothing_is_sent(
    admin: User, services, admin_account, flags_on
) -> None:
    await add_report(services, admin_account, "pc-1")
    await admin.open(page_of("pc-1"))
    admin.find(marker="command-kind").elements.pop().value = "run_script"
    admin.find(marker="send-command").click()  # no script name
    await admin.should_see("Not sent")
    admin.find(marker="send-message").click()  # no title
    await admin.should_see("Not sent")
    assert deliveries(services, admin_account, "pc-1", "command") == []
    assert deliveries(services, admin_account, "pc-1", "message") == []


async def test_a_viewer_sees_but_cannot_send_or_cancel(user: User, services, flags_on) -> None:
    admin_account = make_account(services, "admin")
    viewer = make_account(services, "viewer", org_name=admin_account.org_name)
    await add_report(services, admin_account, "pc-1")
    sent = await services.messaging.send_message(
        org_id=admin_account.org_id, message=MessageIn(title="Heads up", machine_ids=["pc-1"]), actor="test"
    )
    await sign_in(user, viewer)
    await user.should_see(marker="fleet-table", retries=50)
    await user.open(page_of("pc-1"))
    await user.should_see("Heads up")
    await user.should_not_see(marker="send-message")
    await user.should_not_see(marker="send-command")
    await user.open("/messages")
    await user.should_see("Heads up")
    await user.should_see("0 of 1 delivered, 0 acknowledged")
    await user.should_not_see(marker="cancel-item")
    await user.open(f"/messages/item?type=message&id={sent.item_id}")
    await user.should_see("Heads up")
    await user.should_not_see(marker="cancel-item")


async def test_an_admin_demoted_meanwhile_cannot_send(admin: User, services, admin_account, flags_on) -> None:
    await add_report(services, admin_account, "pc-1")
    await admin.open(page_of("pc-1"))
    other = make_account(services, "admin", org_name=admin_account.org_name)
    assert other
    users = {u.email: u.id for u in services.accounts.list_users(org_id=admin_account.org_id)}
    services.accounts.set_role(org_id=admin_account.org_id, user_id=users[admin_account.email], role="viewer")
    admin.find(marker="message-title").type("sneaky")
    admin.find(marker="send-message").click()
    await admin.should_see("Only an admin can send messages and commands.")
    assert deliveries(services, admin_account, "pc-1", "message") == []


async def test_the_messages_page_shows_progress_cancels_and_drills_down(
    admin: User, services, admin_account, flags_on
) -> None:
    for machine_id in ("pc-1", "pc-2", XSS):
        await add_report(services, admin_account, machine_id)
    sent = await services.messaging.send_message(
        org_id=admin_account.org_id, message=MessageIn(title="Reboot tonight", all=True), actor="test"
    )
    entry = deliveries(services, admin_account, "pc-1", "message")[0]
    services.messaging.post_state(
        org_id=admin_account.org_id,
        delivery_id=entry["delivery_id"],
        state=StateIn(machine_id="pc-1", state="acknowledged"),
    )
    await admin.open("/")
    await admin.should_see(marker="nav-messages")
    await admin.open("/messages")
    await admin.should_see("1 of 3 delivered, 1 acknowledged")
    admin.find(marker="cancel-item").click()
    await admin.should_see("Cancelled 2 deliveries not yet delivered.")
    await admin.should_see("1 of 3 delivered, 1 acknowledged (2 cancelled)")
    await admin.open(f"/messages/item?type=message&id={sent.item_id}")
    await admin.should_see("Reboot tonight")
    machines = [e.text for e in admin.find(marker="delivery-machine").elements]
    assert sorted(machines) == sorted(["pc-1", "pc-2", XSS])
    await admin.should_see("acknowledged")
    # Another organisation's item is not found.
    stranger = make_account(services, "admin")
    other = await services.messaging.send_message(
        org_id=stranger.org_id, message=MessageIn(title="theirs", all=True), actor="test"
    )
    await admin.open(f"/messages/item?type=message&id={other.item_id}")
    await admin.should_see(marker="item-missing")
    await admin.should_not_see("theirs")


async def test_the_fleet_page_sends_to_the_selection_or_the_filter(admin: User, services, admin_account, flags_on):
    for machine_id in ("pc-1", "pc-2", "srv-1"):
        await add_report(services, admin_account, machine_id)
    await admin.open("/")
    table = admin.find(marker="fleet-table").elements.pop()
    await until(lambda: len(table.rows) == 3)
    table.selected = [r for r in table.rows if r["machine_id"] in ("pc-1", "srv-1")]
    admin.find(marker="fleet-send-message").click()
    await admin.should_see("The 2 selected machine(s)")
    admin.find(marker="message-title").type("to the selection")
    admin.find(marker="fleet-send-go").click()
    await admin.should_see("Sent to 2 machines.")
    assert [len(deliveries(services, admin_account, m, "message")) for m in ("pc-1", "pc-2", "srv-1")] == [1, 0, 1]

    # Everything that matches the search "pc": both pcs, selection or not.
    table.selected = []
    admin.find(marker="search").type("pc")
    await until(lambda: sorted(r["machine_id"] for r in table.rows) == ["pc-1", "pc-2"])
    admin.find(marker="fleet-send-command").click()
    await admin.should_see("All 2 machines that match the filter")
    admin.find(marker="fleet-send-go").click()
    await until(lambda: [len(deliveries(services, admin_account, m, "command")) for m in ("pc-1", "pc-2")] == [1, 1])
    assert deliveries(services, admin_account, "srv-1", "command") == []


async def test_the_messages_pages_are_absent_with_the_flags_off(admin: User) -> None:
    await admin.open("/")
    await admin.should_not_see(marker="nav-messages")
    await admin.should_not_see(marker="fleet-send-message")
    for path in ("/messages", "/messages/item?type=message&id=x"):
        assert (await admin.http_client.get(path)).status_code == 404
