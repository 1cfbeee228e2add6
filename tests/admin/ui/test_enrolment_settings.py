"""Settings, enrolment: enrol keys (shown once), enrolled machines, resetting one, the organisation's
refusal of unbound keys and its machine quota. Admins only, checked on the server for every change."""

from __future__ import annotations

import pytest
from nicegui.testing import User

from tests.helpers.ui import label_text, make_account, sign_in

XSS_ID = '<img src=x onerror=alert(1)> "pc"'


@pytest.fixture
async def on_settings(admin: User) -> User:
    await admin.open("/settings")
    await admin.should_see(marker="enrolment-section")
    return admin


async def test_an_admin_makes_an_enrol_key_shown_once(on_settings: User, services, admin_account) -> None:
    on_settings.find(marker="create-enrol-key").click()
    await on_settings.should_see(marker="new-key", retries=50)
    secret = label_text(on_settings, "new-key")
    principal = services.accounts.authenticate_key(secret)
    assert principal is not None and principal.scopes == {"enroll"} and principal.org_id == admin_account.org_id
    command = label_text(on_settings, "new-key-command")
    assert "--enroll-token-file enroll-token" in command and secret not in command  # never on a command line
    on_settings.find(marker="key-done").click()
    await on_settings.should_not_see(secret)


async def test_enrolled_machines_are_listed_and_an_enrolment_is_reset(on_settings: User, services, admin_account):
    enrolled = services.enrolment.enrol(org_id=admin_account.org_id, machine_id=XSS_ID, hardware_id="hw-1")
    stranger = make_account(services)
    services.enrolment.enrol(org_id=stranger.org_id, machine_id="strangers-pc", hardware_id="hw-9")
    await on_settings.open("/settings")
    await on_settings.should_see(marker="enrolled-machine")
    assert label_text(on_settings, "enrolled-id") == XSS_ID  # as text, never as HTML
    await on_settings.should_not_see("strangers-pc")

    on_settings.find(marker="reset-enrolment").click()
    on_settings.find(marker="confirm").click()
    await on_settings.should_see(marker="no-enrolled", retries=50)
    assert services.accounts.authenticate_key(enrolled.agent_key) is None
    # Another machine may now take the id.
    services.enrolment.enrol(org_id=admin_account.org_id, machine_id=XSS_ID, hardware_id="hw-2")


async def test_the_organisation_refuses_unbound_keys_and_sets_a_quota(on_settings: User, services, admin_account):
    on_settings.find(marker="require-enrolment").elements.pop().set_value(True)
    await on_settings.should_see("Only enrolled machines' own keys are accepted now.", retries=50)
    assert services.accounts.org(admin_account.org_id).require_enrolment is True
    assert services.accounts.authenticate_key(admin_account.api_key).org_requires_enrolment is True

    quota = on_settings.find(marker="machine-quota").elements.pop()
    quota.set_value(0)
    on_settings.find(marker="save-quota").click()
    await on_settings.should_see("the machine quota must be a whole number from 1", retries=50)
    assert services.accounts.org(admin_account.org_id).machine_quota is None  # nothing changed
    quota.set_value(25)
    on_settings.find(marker="save-quota").click()
    await on_settings.should_see("Machine quota: 25 machines.", retries=50)
    assert services.accounts.org(admin_account.org_id).machine_quota == 25
    quota.set_value(None)
    on_settings.find(marker="save-quota").click()
    await on_settings.should_see("Machine quota: the server's default.", retries=50)
    assert services.accounts.org(admin_account.org_id).machine_quota is None


async def test_a_demoted_admin_changes_no_enrolment(on_settings: User, services, admin_account) -> None:
    enrolled = services.enrolment.enrol(org_id=admin_account.org_id, machine_id="pc-1", hardware_id="hw-1")
    other = make_account(services, "admin", org_name=admin_account.org_name)  # the organisation keeps an admin
    assert other.role == "admin"
    await on_settings.open("/settings")
    await on_settings.should_see(marker="enrolled-machine")
    me = next(u for u in services.accounts.list_users(org_id=admin_account.org_id) if u.email == admin_account.email)
    services.accounts.set_role(org_id=admin_account.org_id, user_id=me.id, role="viewer")
    keys_before = len(services.accounts.list_keys(org_id=admin_account.org_id))

    on_settings.find(marker="reset-enrolment").click()
    on_settings.find(marker="confirm").click()
    await on_settings.should_see("Only an admin can change the organisation's settings.", retries=50)
    assert services.accounts.authenticate_key(enrolled.agent_key) is not None
    on_settings.find(marker="create-enrol-key").click()
    on_settings.find(marker="require-enrolment").elements.pop().set_value(True)
    on_settings.find(marker="machine-quota").elements.pop().set_value(3)
    on_settings.find(marker="save-quota").click()
    await on_settings.should_not_see(marker="new-key")
    org = services.accounts.org(admin_account.org_id)
    assert org.require_enrolment is False and org.machine_quota is None
    assert len(services.accounts.list_keys(org_id=admin_account.org_id)) == keys_before


async def test_a_viewer_sees_no_enrolment_settings(user: User, services) -> None:
    viewer = make_account(services, "viewer")
    services.enrolment.enrol(org_id=viewer.org_id, machine_id="pc-secret", hardware_id="hw-1")
    await sign_in(user, viewer)
    await user.should_see(marker="fleet-table", retries=50)
    await user.open("/settings")
    await user.should_see(marker="admins-only")
    await user.should_not_see(marker="enrolment-section")
    await user.should_not_see("pc-secret")
