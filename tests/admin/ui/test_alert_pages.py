"""The web UI of alerts (NiceGUI's `user` fixture): the bell, /alerts (firing, history, acknowledge),
the rules, channels and silences pages, and the machine page's panel. Admins change; viewers see;
an admin demoted since the page loaded changes nothing."""

from __future__ import annotations

import asyncio
import time

import pytest
from nicegui.testing import User
from sqlalchemy import text

from admin.services.alerts import ChannelIn, GoodbyeIn, RuleIn, RulePatch
from admin.services.errors import NotFound
from tests.helpers.ui import add_report, make_account, sign_in

XSS = "<img src=x onerror=alert(1)>"


async def until(check, attempts: int = 100) -> None:
    for _ in range(attempts):
        if check():
            return
        await asyncio.sleep(0.05)
    assert check()


def demote(services, account) -> None:
    users = {u.email: u.id for u in services.accounts.list_users(org_id=account.org_id)}
    services.accounts.set_role(org_id=account.org_id, user_id=users[account.email], role="viewer")


async def test_an_admin_adds_a_channel_and_a_rule_and_sees_what_fires(admin: User, services, admin_account) -> None:
    await admin.open("/alerts/channels")
    await admin.should_see(marker="channel-name")
    admin.find(marker="channel-name").type("ops hook")
    admin.find(marker="channel-target").type("https://hooks.example.com/x")
    admin.find(marker="channel-secret").type("never-shown")
    admin.find(marker="add-channel-button").click()
    await admin.should_see("Channel added.")
    await admin.should_see("https://hooks.example.com/x · signed")
    await admin.should_not_see("never-shown")
    [channel] = services.alerts.channels(org_id=admin_account.org_id)

    await admin.open("/alerts/rules")
    await admin.should_see(marker="rule-name")
    admin.find(marker="rule-name").type(XSS)
    admin.find(marker="rule-kind").elements.pop().value = "cpu"
    admin.find(marker="rule-threshold").elements.pop().value = 90
    admin.find(marker="rule-channels").elements.pop().value = [channel["channel_id"]]
    admin.find(marker="add-rule-button").click()
    await admin.should_see("Rule added.")
    await admin.should_see(XSS)  # shown as text
    [rule] = services.alerts.rules(org_id=admin_account.org_id)
    assert rule["kind"] == "cpu" and rule["threshold"] == 90 and rule["channels"] == [channel["channel_id"]]

    await add_report(services, admin_account, XSS, cpu=97)
    await admin.open("/alerts")
    await admin.should_see(marker="alert-row")
    await admin.should_see("97.0 %")
    await admin.should_see(marker="bell-count")
    # The machine page lists the same alert.
    from urllib.parse import quote

    await admin.open("/machine?id=" + quote(XSS, safe=""))
    await admin.should_see(marker="machine-alerts")
    await admin.should_see("97.0 %")


async def test_acknowledge_with_an_expiry(admin: User, services, admin_account) -> None:
    rule = services.alerts.create_rule(org_id=admin_account.org_id, spec=RuleIn(name="Disk", kind="disk", threshold=90))
    await add_report(services, admin_account, "pc-1", disk=99)
    await admin.open("/alerts")
    await admin.should_see(marker="alert-row")
    admin.find(marker="ack").click()
    admin.find(marker="ack-3600").click()
    await admin.should_see("Acknowledged.")
    [alert] = services.alerts.firing(org_id=admin_account.org_id)
    assert alert["rule_id"] == rule and alert["acknowledged"] and alert["acked_by"] == admin_account.email
    await admin.should_see(marker="alert-acked")


async def test_viewers_see_but_cannot_change(user: User, services, admin_account) -> None:
    channel = services.alerts.create_channel(
        org_id=admin_account.org_id, spec=ChannelIn(name="hook", kind="webhook", url="https://x.example/h", secret="s")
    )
    services.alerts.create_rule(
        org_id=admin_account.org_id, spec=RuleIn(name="Offline", kind="offline", channels=[channel])
    )
    await add_report(services, admin_account, "pc-1", cpu=99)
    viewer = make_account(services, "viewer", org_name=admin_account.org_name)
    await sign_in(user, viewer)
    await user.should_see(marker="fleet-table", retries=50)
    for path, card, form in (
        ("/alerts/rules", "rules-card", "add-rule"),
        ("/alerts/channels", "channels-card", "add-channel"),
        ("/alerts/silences", "silences-card", "add-silence"),
    ):
        await user.open(path)
        await user.should_see(marker=card)
        await user.should_not_see(marker=form)
        await user.should_not_see(marker="delete")
        await user.should_not_see(marker="edit")
    await user.should_not_see(marker="test-channel")
    await user.open("/alerts")
    await user.should_see(marker="firing-card")
    await user.should_not_see(marker="ack")


async def test_an_admin_demoted_meanwhile_changes_nothing(admin: User, services, admin_account) -> None:
    services.alerts.create_rule(org_id=admin_account.org_id, spec=RuleIn(name="Offline", kind="offline"))
    await admin.open("/alerts/rules")
    await admin.should_see(marker="rule-row")
    other = make_account(services, "admin", org_name=admin_account.org_name)
    assert other
    demote(services, admin_account)
    admin.find(marker="delete").click()
    await admin.should_see("Only an admin can change alerts.")
    admin.find(marker="rule-name").type("sneaky")
    admin.find(marker="add-rule-button").click()
    await until(lambda: len(services.alerts.rules(org_id=admin_account.org_id)) == 1)
    assert [r["name"] for r in services.alerts.rules(org_id=admin_account.org_id)] == ["Offline"]


async def test_other_organisations_alerts_are_not_shown(admin: User, services, admin_account) -> None:
    other = make_account(services, "admin")
    services.alerts.create_rule(org_id=other.org_id, spec=RuleIn(name="theirs", kind="cpu", threshold=10))
    await add_report(services, other, "their-pc", cpu=99)
    assert services.alerts.firing(org_id=other.org_id)
    for path in ("/alerts", "/alerts/rules"):
        await admin.open(path)
        await admin.should_not_see("theirs")
        await admin.should_not_see("their-pc")


async def test_a_machine_that_said_goodbye_shows_as_away(admin: User, services, admin_account) -> None:
    await add_report(services, admin_account, "laptop", now=time.time() - 3600)
    services.alerts.goodbye(org_id=admin_account.org_id, spec=GoodbyeIn(machine_id="laptop", reason="shutdown"))
    with services.engine.begin() as conn:  # an hour ago, as if the laptop had been shut down then
        conn.execute(text("UPDATE machine SET last_seen = last_seen - 3600, goodbye_at = goodbye_at - 3600"))
    await admin.open("/machine?id=laptop")
    await admin.should_see(marker="machine-status")
    assert admin.find(marker="machine-status").elements.pop().text == "away"


def value_of(user: User, marker: str):
    return user.find(marker=marker).elements.pop().value


def secret_of(services, channel_id: int) -> str:
    with services.engine.connect() as conn:
        return conn.execute(text("SELECT secret FROM alert_channel WHERE id = :id"), {"id": channel_id}).scalar_one()


def last_audit(services, account, action: str) -> dict:
    return next(e for e in services.audit.entries(org_id=account.org_id)["data"] if e["action"] == action)


async def test_an_admin_edits_a_rule_and_the_audit_log_says_so(admin: User, services, admin_account) -> None:
    org_id = admin_account.org_id
    hook = services.alerts.create_channel(
        org_id=org_id, spec=ChannelIn(name="hook", kind="webhook", url="https://x.example/h")
    )
    rule = services.alerts.create_rule(
        org_id=org_id, spec=RuleIn(name="CPU", kind="cpu", threshold=90, clear_below=80, for_seconds=60)
    )
    await admin.open("/alerts/rules")
    await admin.should_see(marker="rule-row")
    admin.find(marker="edit").click()
    await admin.should_see(marker="edit-rule-name")
    # The dialog holds the rule as it is.
    assert value_of(admin, "edit-rule-name") == "CPU" and value_of(admin, "edit-rule-threshold") == 90
    assert value_of(admin, "edit-rule-clear") == 80 and value_of(admin, "edit-rule-for") == 60
    admin.find(marker="edit-rule-name").clear().type(XSS)
    admin.find(marker="edit-rule-threshold").elements.pop().value = 95
    admin.find(marker="edit-rule-severity").elements.pop().value = "critical"
    admin.find(marker="edit-rule-channels").elements.pop().value = [hook]
    admin.find(marker="edit-save").click()
    await admin.should_see("Rule saved.")
    await admin.should_see(XSS)  # the list shows the new name, as text
    [saved] = services.alerts.rules(org_id=org_id)
    assert (saved["rule_id"], saved["name"], saved["kind"]) == (rule, XSS, "cpu")
    assert (saved["threshold"], saved["clear_below"], saved["severity"]) == (95, 80, "critical")
    assert saved["channels"] == [hook]
    entry = last_audit(services, admin_account, "alert_rule.update")
    assert entry["actor"] == f"user {admin_account.email}" and entry["target"] == f"rule {rule}"

    # Bad input is refused with a reason and changes nothing.
    admin.find(marker="edit").click()
    await admin.should_see(marker="edit-rule-clear")
    admin.find(marker="edit-rule-clear").elements.pop().value = 99  # above the threshold
    admin.find(marker="edit-save").click()
    await admin.should_see("clear_below must not be above the threshold")
    assert services.alerts.rules(org_id=org_id) == [saved]


async def test_an_admin_edits_a_channel_and_its_secret_is_kept_unless_a_new_one_is_typed(
    admin: User, services, admin_account
) -> None:
    org_id = admin_account.org_id
    hook = services.alerts.create_channel(
        org_id=org_id, spec=ChannelIn(name="hook", kind="webhook", url="https://x.example/h", secret="first-secret")
    )
    await admin.open("/alerts/channels")
    await admin.should_see(marker="channel-row")
    admin.find(marker="edit").click()
    await admin.should_see(marker="edit-channel-secret")
    assert value_of(admin, "edit-channel-secret") in ("", None)  # never shown again, not even here
    await admin.should_not_see("first-secret")
    admin.find(marker="edit-channel-name").clear().type("renamed")
    admin.find(marker="edit-channel-target").clear().type("https://y.example/new")
    admin.find(marker="edit-save").click()
    await admin.should_see("Channel saved.")
    await admin.should_see("https://y.example/new · signed")
    assert '"first-secret"' in secret_of(services, hook)
    assert last_audit(services, admin_account, "alert_channel.update")["actor"] == f"user {admin_account.email}"

    admin.find(marker="edit").click()
    await admin.should_see(marker="edit-channel-secret")
    admin.find(marker="edit-channel-secret").type("second-secret")
    admin.find(marker="edit-save").click()
    await until(lambda: '"second-secret"' in secret_of(services, hook))
    for entry in services.audit.entries(org_id=org_id)["data"]:
        assert "second-secret" not in str(entry)

    admin.find(marker="edit").click()
    await admin.should_see(marker="edit-channel-remove-secret")
    admin.find(marker="edit-channel-remove-secret").click()
    admin.find(marker="edit-save").click()
    await until(lambda: secret_of(services, hook) == "{}")
    [channel] = services.alerts.channels(org_id=org_id)
    assert channel["name"] == "renamed" and channel["has_secret"] is False


async def test_an_apprise_channels_urls_are_kept_unless_new_ones_are_typed(
    admin: User, services, admin_account
) -> None:
    org_id = admin_account.org_id
    token_url = "ntfys://secret-token@ntfy.example/topic"
    apprise = services.alerts.create_channel(
        org_id=org_id, spec=ChannelIn(name="chat", kind="apprise", urls=[token_url])
    )
    await admin.open("/alerts/channels")
    admin.find(marker="edit").click()
    await admin.should_see(marker="edit-channel-target")
    assert value_of(admin, "edit-channel-target") == ""  # the URLs carry tokens: not shown
    await admin.should_not_see("secret-token")
    admin.find(marker="edit-channel-name").clear().type("chat room")
    admin.find(marker="edit-save").click()
    await admin.should_see("Channel saved.")
    assert token_url in secret_of(services, apprise)
    assert services.alerts.channels(org_id=org_id)[0]["name"] == "chat room"


@pytest.mark.parametrize("path, name", [("/alerts/rules", "edit-rule-name"), ("/alerts/channels", "edit-channel-name")])
async def test_an_admin_demoted_meanwhile_edits_nothing(admin: User, services, admin_account, path, name) -> None:
    org_id = admin_account.org_id
    services.alerts.create_rule(org_id=org_id, spec=RuleIn(name="Offline", kind="offline"))
    services.alerts.create_channel(
        org_id=org_id, spec=ChannelIn(name="hook", kind="webhook", url="https://x.example/h")
    )
    make_account(services, "admin", org_name=admin_account.org_name)  # the organisation keeps an admin
    before = (services.alerts.rules(org_id=org_id), services.alerts.channels(org_id=org_id))
    await admin.open(path)
    admin.find(marker="edit").click()
    await admin.should_see(marker=name)
    demote(services, admin_account)  # after the page and its dialog were drawn
    admin.find(marker=name).clear().type("sneaky")
    admin.find(marker="edit-save").click()
    await admin.should_see("Only an admin can change alerts.")
    assert (services.alerts.rules(org_id=org_id), services.alerts.channels(org_id=org_id)) == before


def test_the_service_edits_only_its_own_organisations_rules(services, admin_account) -> None:
    other = make_account(services, "admin")
    theirs = services.alerts.create_rule(org_id=other.org_id, spec=RuleIn(name="theirs", kind="offline"))
    with pytest.raises(NotFound):
        services.alerts.update_rule(org_id=admin_account.org_id, rule_id=theirs, patch=RulePatch(name="mine"))
    assert services.alerts.rules(org_id=other.org_id)[0]["name"] == "theirs"


async def test_an_admin_turns_a_rule_off_and_on_in_the_edit_dialog(admin: User, services, admin_account) -> None:
    org_id = admin_account.org_id
    rule = services.alerts.create_rule(org_id=org_id, spec=RuleIn(name="CPU", kind="cpu", threshold=50))
    await add_report(services, admin_account, "pc-1", cpu=99)
    assert [a["machine_id"] for a in services.alerts.firing(org_id=org_id)] == ["pc-1"]
    await admin.open("/alerts/rules")
    await admin.should_not_see(marker="rule-off")
    admin.find(marker="edit").click()
    await admin.should_see(marker="edit-rule-enabled")
    assert value_of(admin, "edit-rule-enabled") is True
    admin.find(marker="edit-rule-enabled").click()
    admin.find(marker="edit-save").click()
    await admin.should_see(marker="rule-off")
    assert services.alerts.rules(org_id=org_id)[0]["enabled"] is False
    assert services.alerts.firing(org_id=org_id) == []  # its alert resolved
    entry = last_audit(services, admin_account, "alert_rule.update")
    assert entry["target"] == f"rule {rule}" and entry["detail"]["enabled"] is False
