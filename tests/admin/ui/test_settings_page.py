"""Organisation settings: API keys (made once, revoked at once), users, agent install instructions."""

from __future__ import annotations

import pytest
from nicegui.testing import User

from admin.ui.pages.settings import install_commands
from tests.helpers.ui import PASSWORD, label_text, make_account


def keys_of(services, account) -> list:
    return services.accounts.list_keys(org_id=account.org_id)


def emails_of(services, account) -> dict[str, str]:
    return {u.email: u.role for u in services.accounts.list_users(org_id=account.org_id)}


def tick_scopes(user: User, *scopes: str) -> None:
    for scope in ("agent", "read", "admin", "enroll"):
        user.find(marker=f"scope-{scope}").elements.pop().set_value(scope in scopes)


@pytest.fixture
async def on_settings(admin: User) -> User:
    await admin.open("/settings")
    await admin.should_see(marker="keys-section")
    return admin


async def test_a_new_key_is_shown_once_and_works_with_its_scopes(on_settings: User, services, admin_account) -> None:
    user = on_settings
    tick_scopes(user, "read", "admin")
    user.find(marker="create-key").click()
    await user.should_see(marker="new-key", retries=50)
    secret = label_text(user, "new-key")
    principal = services.accounts.authenticate_key(secret)
    assert principal is not None and principal.org_id == admin_account.org_id
    assert principal.scopes == {"read", "admin"}
    user.find(marker="key-done").click()
    await user.should_not_see(marker="new-key")
    await user.should_not_see(secret)
    await user.open("/settings")  # nowhere on the page any more, only its prefix
    await user.should_not_see(secret)
    await user.should_see(f"{secret[:12]}…")


async def test_a_key_with_the_agent_scope_comes_with_its_config_line(on_settings: User) -> None:
    tick_scopes(on_settings, "agent")
    on_settings.find(marker="create-key").click()
    await on_settings.should_see(marker="new-key", retries=50)
    secret = label_text(on_settings, "new-key")
    await on_settings.should_see(f'token = "{secret}"')  # the config file, not a command line


async def test_a_key_without_scopes_is_refused_and_none_is_made(on_settings: User, services, admin_account) -> None:
    before = len(keys_of(services, admin_account))
    tick_scopes(on_settings)
    on_settings.find(marker="create-key").click()
    await on_settings.should_see("a key needs at least one scope", retries=50)
    await on_settings.should_not_see(marker="new-key")
    assert len(keys_of(services, admin_account)) == before


async def test_revoking_a_key_refuses_it_at_once(on_settings: User, services, admin_account) -> None:
    first = keys_of(services, admin_account)[0]
    assert services.accounts.authenticate_key(admin_account.api_key) is not None
    on_settings.find(marker=f"revoke-{first.id}").click()
    on_settings.find(marker="confirm").click()
    await on_settings.should_see(f"Key #{first.id} revoked.", retries=50)
    assert services.accounts.authenticate_key(admin_account.api_key) is None
    await on_settings.should_not_see(marker=f"revoke-{first.id}")


async def test_adding_a_user_who_can_then_sign_in(on_settings: User, services, admin_account) -> None:
    on_settings.find(marker="new-user-email").type("New.Person@Example.com")
    on_settings.find(marker="new-user-password").type(PASSWORD)
    on_settings.find(marker="new-user-role").elements.pop().set_value("admin")
    on_settings.find(marker="add-user").click()
    await on_settings.should_see("User new.person@example.com added.", retries=50)
    assert emails_of(services, admin_account)["new.person@example.com"] == "admin"
    assert services.accounts.authenticate_user("new.person@example.com", PASSWORD) is not None


async def test_a_bad_new_user_is_refused_and_nothing_is_stored(on_settings: User, services, admin_account) -> None:
    before = emails_of(services, admin_account)
    for email, password, message in (
        ("not-an-address", PASSWORD, "not an e-mail address"),
        ("short@example.com", "1234567", "at least 8 characters"),
        (admin_account.email, PASSWORD, "is already a user of this organisation"),
    ):
        on_settings.find(marker="new-user-email").clear().type(email)
        on_settings.find(marker="new-user-password").clear().type(password)
        on_settings.find(marker="add-user").click()
        await on_settings.should_see(message, retries=50)
        assert emails_of(services, admin_account) == before


async def test_roles_change_and_users_are_removed(on_settings: User, services, admin_account) -> None:
    viewer = make_account(services, "viewer", org_name=admin_account.org_name)
    await on_settings.open("/settings")
    ids = {u.email: u.id for u in services.accounts.list_users(org_id=admin_account.org_id)}
    on_settings.find(marker=f"role-{ids[viewer.email]}").elements.pop().set_value("admin")
    await on_settings.should_see("Role changed to admin.", retries=50)
    assert emails_of(services, admin_account)[viewer.email] == "admin"
    on_settings.find(marker=f"remove-{ids[viewer.email]}").click()
    on_settings.find(marker="confirm").click()
    await on_settings.should_see("User removed.", retries=50)
    assert viewer.email not in emails_of(services, admin_account)


async def test_an_admin_cannot_lock_themselves_out(on_settings: User, services, admin_account) -> None:
    me = next(u.id for u in services.accounts.list_users(org_id=admin_account.org_id))
    assert not on_settings.find(marker=f"role-{me}").elements.pop().enabled
    assert not on_settings.find(marker=f"remove-{me}").elements.pop().enabled


async def test_a_demoted_admin_changes_nothing(on_settings: User, services, admin_account) -> None:
    other = make_account(services, "admin", org_name=admin_account.org_name)
    await on_settings.open("/settings")
    ids = {u.email: u.id for u in services.accounts.list_users(org_id=admin_account.org_id)}
    services.accounts.set_role(org_id=admin_account.org_id, user_id=ids[admin_account.email], role="viewer")
    keys_before = len(keys_of(services, admin_account))
    on_settings.find(marker="create-key").click()
    await on_settings.should_see("Only an admin can change the organisation's settings.", retries=50)
    assert len(keys_of(services, admin_account)) == keys_before
    on_settings.find(marker=f"remove-{ids[other.email]}").click()
    on_settings.find(marker="confirm").click()
    await on_settings.should_see("Only an admin can change the organisation's settings.", retries=50)
    assert other.email in emails_of(services, admin_account)


async def test_other_organisations_keys_and_users_are_not_shown(on_settings: User, services) -> None:
    stranger = make_account(services)
    await on_settings.open("/settings")
    await on_settings.should_not_see(stranger.email)
    await on_settings.should_not_see(stranger.api_key[:12])


async def test_install_instructions_use_the_servers_url(on_settings: User, services) -> None:
    assert label_text(on_settings, "server-url") == "http://test"  # the address the browser used
    assert label_text(on_settings, "install-command") == install_commands("http://test")[0]
    services.settings.public_url = "https://fleet.example.com/"
    await on_settings.open("/settings")
    assert label_text(on_settings, "server-url") == "https://fleet.example.com"
    assert (
        label_text(on_settings, "install-command")
        == "dashfleet-agent --server https://fleet.example.com --enroll-token-file enroll-token --once"
    )
