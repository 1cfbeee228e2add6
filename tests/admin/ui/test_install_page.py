"""The "Install the agent" page (admins): a new install link with one command per OS, shown once;
the organisation's live links with their uses left; revoking one. Viewers, admins demoted while
the page is open, and other organisations cannot."""

from __future__ import annotations

import pytest
from nicegui.testing import User

from admin.ui.pages.install import PATH
from tests.helpers.ui import label_text, make_account, sign_in

PUBLIC_URL = "https://fleet.example.com"


def links_of(services, account) -> list:
    return services.install_links.list(org_id=account.org_id)


@pytest.fixture
async def on_install(admin: User, services) -> User:
    services.settings.public_url = PUBLIC_URL
    await admin.open(PATH)
    await admin.should_see(marker="install-section")
    return admin


async def test_a_new_link_shows_one_command_per_os_once(on_install: User, services, admin_account) -> None:
    user = on_install
    user.find(marker="create-link").click()
    await user.should_see(marker="command-linux", retries=50)
    [link] = links_of(services, admin_account)
    assert (link.uses_allowed, link.created_by) == (50, f"user {admin_account.email}")  # as the audit log names them
    assert 86400 - 60 < link.expires_at - link.created_at <= 86400

    linux = label_text(user, "command-linux")
    assert linux.startswith(f"curl --proto '=https' --tlsv1.2 -sSL '{PUBLIC_URL}/install/") or linux.startswith(
        f"curl --proto '=https' --tlsv1.2 -sSL {PUBLIC_URL}/install/"
    )
    assert linux.endswith(".sh | sudo sh")
    code = linux.split("/install/")[1].split(".sh")[0]
    assert services.install_links.state_of(code) == "live", "the command is the link just made"
    assert label_text(user, "command-macos") == linux
    assert f"'{PUBLIC_URL}/install/{code}.ps1'" in label_text(user, "command-windows")
    assert "50 uses" in label_text(user, "new-link-summary")
    await user.should_see("appears on the fleet page within a minute")
    await user.should_see(marker=f"uses-left-{link.link_id}", retries=50)
    assert label_text(user, f"uses-left-{link.link_id}") == "50 of 50 uses left"

    await user.open(PATH)  # the command is not shown again: the server keeps only a hash of the code
    await user.should_see(marker=f"link-{link.link_id}")
    await user.should_not_see(code)


async def test_lifetime_and_uses_are_taken_and_bad_uses_refused(on_install: User, services, admin_account) -> None:
    user = on_install
    user.find(marker="link-lifetime").elements.pop().set_value(3600)
    user.find(marker="link-uses").elements.pop().set_value(3)
    user.find(marker="create-link").click()
    await user.should_see(marker="command-linux", retries=50)
    [link] = links_of(services, admin_account)
    assert link.uses_allowed == 3 and 3600 - 60 < link.expires_at - link.created_at <= 3600

    user.find(marker="link-uses").elements.pop().set_value(0)
    user.find(marker="create-link").click()
    await user.should_see("uses must be 1 to 10000", retries=50)
    user.find(marker="link-uses").elements.pop().set_value(2.5)
    user.find(marker="create-link").click()
    await user.should_see("Uses must be a whole number", retries=50)
    assert len(links_of(services, admin_account)) == 1


async def test_revoking_a_link_stops_it_at_once(on_install: User, services, admin_account) -> None:
    link = services.install_links.create(org_id=admin_account.org_id, actor="test", request_base=None)
    code = link.url.rsplit("/", 1)[1]
    await on_install.open(PATH)
    on_install.find(marker=f"revoke-link-{link.link_id}").click()
    on_install.find(marker="confirm").click()
    await on_install.should_see(f"Install link #{link.link_id} revoked.", retries=50)
    assert services.install_links.state_of(code) == "revoked"
    await on_install.should_not_see(marker=f"link-{link.link_id}")


async def test_without_a_public_url_no_link_is_made(on_install: User, services, admin_account) -> None:
    services.settings.public_url = ""  # and the browser came from http://test, not this machine
    on_install.find(marker="create-link").click()
    await on_install.should_see("install links need DASHFLEET_PUBLIC_URL", retries=50)
    assert links_of(services, admin_account) == []


async def test_a_viewer_gets_no_page(user: User, services, admin_account) -> None:
    services.settings.public_url = PUBLIC_URL
    link = services.install_links.create(org_id=admin_account.org_id, actor="test")
    viewer = make_account(services, "viewer", org_name=admin_account.org_name)
    await sign_in(user, viewer)
    await user.should_see(marker="fleet-table", retries=50)
    await user.open(PATH)
    await user.should_see(marker="admins-only")
    await user.should_not_see(marker="create-link")
    await user.should_not_see(marker=f"link-{link.link_id}")


async def test_an_admin_demoted_meanwhile_cannot_make_or_revoke(on_install: User, services, admin_account) -> None:
    link = services.install_links.create(org_id=admin_account.org_id, actor="test")
    await on_install.open(PATH)
    await on_install.should_see(marker=f"revoke-link-{link.link_id}")
    # Another admin demotes this one while the page is open.
    make_account(services, "admin", org_name=admin_account.org_name)
    [me] = [u for u in services.accounts.list_users(org_id=admin_account.org_id) if u.email == admin_account.email]
    services.accounts.set_role(org_id=admin_account.org_id, user_id=me.id, role="viewer")

    on_install.find(marker="create-link").click()
    await on_install.should_see("Only an admin can make or revoke install links.", retries=50)
    on_install.find(marker=f"revoke-link-{link.link_id}").click()
    on_install.find(marker="confirm").click()
    await on_install.should_see("Only an admin can make or revoke install links.", retries=50)
    assert [entry.link_id for entry in links_of(services, admin_account)] == [link.link_id]
    assert services.install_links.list(org_id=admin_account.org_id)[0].revoked_at is None


async def test_another_organisations_links_are_not_shown(on_install: User, services) -> None:
    stranger = make_account(services)
    theirs = services.install_links.create(org_id=stranger.org_id, actor=stranger.email)
    await on_install.open(PATH)
    await on_install.should_see(marker="no-links")
    await on_install.should_not_see(marker=f"link-{theirs.link_id}")
    await on_install.should_not_see(stranger.email)


async def test_settings_leads_to_the_install_page(admin: User, services) -> None:
    await admin.open("/settings")
    await admin.should_not_see(marker="create-link")
    admin.find(marker="to-install-page").click()
    # What only the install page has (both pages have an "Install the agent" section).
    await admin.should_see(marker="create-link", retries=50)
    await admin.should_not_see(marker="to-install-page")
