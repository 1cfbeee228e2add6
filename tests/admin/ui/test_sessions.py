"""Web sessions (docs/security.md, findings 6-10, 12, 16): kept in the database, checked at every
event, ended everywhere by a sign-out, removal, password or role change; no server-side state
before a sign-in; the session cookie's attributes; e-mails per organisation; passwords changed
in the UI."""

from __future__ import annotations

import asyncio
import json
import os
import time

import pytest
from nicegui import app as nicegui_app
from nicegui import ui
from nicegui.testing import User

from admin.ui import auth
from tests.helpers.ui import PASSWORD, add_report, make_account, services_sign_in, shown_machine_ids, sign_in


def user_storage_files() -> list[str]:
    return sorted(p.name for p in nicegui_app.storage.path.glob("storage-user-*.json"))


async def test_visiting_the_sign_in_page_keeps_nothing_on_the_server(user: User, services) -> None:
    before = user_storage_files()
    for _ in range(3):
        user.http_client.cookies.clear()  # a new visitor each time
        await user.open("/login")
        await user.should_see(marker="sign-in")
    await asyncio.sleep(0.3)  # NiceGUI writes its storage files in the background
    assert user_storage_files() == before


async def test_signing_out_removes_the_browser_s_storage(admin: User, services) -> None:
    await asyncio.sleep(0.3)
    assert user_storage_files(), "signed in: the browser's preferences are kept"
    admin.find(marker="sign-out").click()
    await admin.should_see(marker="sign-in", retries=50)
    await asyncio.sleep(0.3)
    assert user_storage_files() == []


def test_old_storage_files_are_pruned(tmp_path) -> None:
    old, fresh = tmp_path / "storage-user-old.json", tmp_path / "storage-user-new.json"
    old.write_text("{}")
    fresh.write_text("{}")
    other = tmp_path / "storage-general.json"
    other.write_text("{}")
    long_ago = time.time() - auth.USER_STORAGE_MAX_AGE_SECONDS - 60
    os.utime(old, (long_ago, long_ago))
    os.utime(other, (long_ago, long_ago))
    assert auth.prune_user_storage_files(tmp_path, max_age=auth.USER_STORAGE_MAX_AGE_SECONDS) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["storage-general.json", "storage-user-new.json"]


# -- finding 7: every event re-checks the session --------------------------------------------
def send_event(user: User, element: ui.element, event: str, *args: object) -> None:
    """What the browser's socket sends for an event (the one entry the server has for them)."""
    listener = next(lid for lid, ln in element._event_listeners.items() if ln.type == event)
    user.client.handle_event(
        {"id": element.id, "client_id": user.client.id, "listener_id": listener, "args": [json.dumps(a) for a in args]}
    )


async def test_an_event_from_a_page_whose_session_ended_is_not_handled(user: User, services) -> None:
    account = make_account(services)
    for machine_id in ("pc-1", "pc-2"):
        await add_report(services, account, machine_id)
    await sign_in(user, account)
    await user.should_see(marker="fleet-table", retries=50)
    search = user.find(marker="search").elements.pop()
    send_event(user, search, "update:value", "pc-2")  # alive: the search runs
    for _ in range(100):
        if shown_machine_ids(user) == ["pc-2"]:
            break
        await asyncio.sleep(0.02)
    assert shown_machine_ids(user) == ["pc-2"]
    page = user.client
    me = services.accounts.user_by_email(email=account.email, org_id=account.org_id)
    services.sessions.end_all_of(org_id=account.org_id, user_id=me.id)  # e.g. from another process
    await add_report(services, account, "pc-3")
    send_event(user, search, "update:value", "pc-")
    await user.should_see(marker="sign-in", retries=50)
    assert user.client is not page
    await asyncio.sleep(1.2)
    assert page.is_deleted, "the ended page is disconnected: nothing more it sends is handled"


async def test_pages_of_an_ended_session_are_sent_away_by_the_sweep(user: User, services) -> None:
    account = make_account(services)
    await sign_in(user, account)
    await user.should_see(marker="fleet-table", retries=50)
    me = services.accounts.user_by_email(email=account.email, org_id=account.org_id)
    services.accounts.set_role(org_id=account.org_id, user_id=me.id, role="admin")  # no change: lives on
    await auth.sweep_ended_sessions(services)
    await user.should_see(marker="fleet-table")
    other = make_account(services, org_name=account.org_name)  # the org keeps an admin
    assert other
    services.accounts.set_role(org_id=account.org_id, user_id=me.id, role="viewer")  # a role change ends it
    await auth.sweep_ended_sessions(services)
    await user.should_see(marker="sign-in", retries=50)


# -- finding 8: a reused user id does not inherit a session --------------------------------------
async def test_a_new_user_with_a_removed_user_s_id_does_not_inherit_the_session(user: User, services) -> None:
    first = make_account(services)
    removed = make_account(services, org_name=first.org_name)
    await sign_in(user, removed)
    await user.should_see(marker="fleet-table", retries=50)
    old = services.accounts.user_by_email(email=removed.email, org_id=first.org_id)
    services.accounts.delete_user(org_id=first.org_id, user_id=old.id)
    newcomer = services.accounts.create_user(
        org_id=first.org_id, email="newcomer@example.com", password=PASSWORD, role="admin"
    )
    assert newcomer.id == old.id, "SQLite gives the next user the removed user's id"
    await user.open("/settings")  # with the removed user's cookie
    await user.should_see(marker="sign-in")
    await user.should_not_see(marker="keys-section")


# -- finding 10: the cookie ------------------------------------------------------------------------
async def test_the_session_cookie_is_http_only_strict_and_new_at_each_sign_in(user: User, services) -> None:
    account = make_account(services)
    me = services.accounts.user_by_email(email=account.email, org_id=account.org_id)
    answers = []
    for base in ("http://test", "https://test"):
        code = services.sessions.start(user=me)
        resp = await user.http_client.get(f"{base}{auth.complete_url(code, '/settings')}", follow_redirects=False)
        assert resp.status_code == 303 and resp.headers["location"] == "/settings"
        answers.append(resp)
    plain, secure = (r.headers["set-cookie"].lower() for r in answers)
    for cookie in (plain, secure):
        assert cookie.startswith(auth.SESSION_COOKIE + "=")
        assert "httponly" in cookie and "samesite=strict" in cookie and "path=/" in cookie
    assert "secure" not in plain.split(";")[1:].__str__() and "; secure" in secure
    tokens = [r.cookies[auth.SESSION_COOKIE] for r in answers]
    assert tokens[0] != tokens[1]
    # The second sign-in in this browser ended the first session (it sent the first cookie).
    assert services.sessions.check(tokens[0]) is None and services.sessions.check(tokens[1]) is not None


async def test_a_code_works_once_quickly_and_only_from_this_site(user: User, services) -> None:
    account = make_account(services)
    me = services.accounts.user_by_email(email=account.email, org_id=account.org_id)
    code = services.sessions.start(user=me)
    cross = await user.http_client.get(
        auth.complete_url(code, "/"), headers={"Sec-Fetch-Site": "cross-site"}, follow_redirects=False
    )
    assert cross.headers["location"] == auth.LOGIN_PATH and auth.SESSION_COOKIE not in cross.cookies
    first = await user.http_client.get(auth.complete_url(code, "/"), follow_redirects=False)
    assert auth.SESSION_COOKIE in first.cookies
    again = await user.http_client.get(auth.complete_url(code, "/"), follow_redirects=False)
    assert again.headers["location"] == auth.LOGIN_PATH and auth.SESSION_COOKIE not in again.cookies
    stale = services.sessions.start(user=me, now=time.time() - 60)
    assert services.sessions.complete(stale) is None
    for bad in ("", "x" * 5000, "not-a-code"):
        resp = await user.http_client.get(f"{auth.COMPLETE_PATH}?code={bad}", follow_redirects=False)
        assert resp.status_code == 303 and resp.headers["location"] == auth.LOGIN_PATH


# -- finding 12: adding a user says nothing about other organisations ------------------------------
async def test_an_e_mail_of_another_organisation_can_be_added_and_each_signs_in_to_their_own(
    admin: User, services, admin_account
) -> None:
    elsewhere = make_account(services)  # another organisation's user
    admin.find(marker="nav-settings").click()
    await admin.should_see(marker="users-section", retries=50)
    admin.find(marker="new-user-email").type(elsewhere.email)
    admin.find(marker="new-user-password").type("another password 1")
    admin.find(marker="add-user").click()
    await admin.should_see(f"User {elsewhere.email} added.", retries=50)
    # The same again in this organisation: refused, saying only what this organisation has.
    admin.find(marker="new-user-email").type(elsewhere.email)
    admin.find(marker="new-user-password").type("another password 1")
    admin.find(marker="add-user").click()
    await admin.should_see(f"{elsewhere.email} is already a user of this organisation", retries=50)
    mine = services.accounts.authenticate_user(elsewhere.email, "another password 1")
    theirs = services.accounts.authenticate_user(elsewhere.email, PASSWORD)
    assert (mine.org_id, theirs.org_id) == (admin_account.org_id, elsewhere.org_id)


# -- finding 16: passwords changed in the UI ---------------------------------------------------------
async def test_a_user_changes_their_own_password_and_other_sessions_end(user: User, services) -> None:
    viewer = make_account(services, "viewer")
    elsewhere = services_sign_in(services, viewer)  # the same person in another browser
    await sign_in(user, viewer)
    await user.should_see(marker="fleet-table", retries=50)
    await user.open("/account")
    user.find(marker="current-password").type("wrong one")
    user.find(marker="new-password").type("a brand new password")
    user.find(marker="repeat-password").type("a brand new password")
    user.find(marker="change-password").click()
    await user.should_see("Wrong current password.", retries=50)
    user.find(marker="current-password").clear().type(PASSWORD)
    user.find(marker="change-password").click()
    await user.should_see(marker="password-section", retries=50)
    await user.should_see("Password changed", retries=50)
    assert services.sessions.check(elsewhere) is None
    assert services.accounts.authenticate_user(viewer.email, "a brand new password") is not None
    assert services.accounts.authenticate_user(viewer.email, PASSWORD) is None
    await user.open("/")  # this browser stays signed in
    await user.should_see(marker="fleet-table")


async def test_sign_out_everywhere(user: User, services) -> None:
    viewer = make_account(services, "viewer")
    elsewhere = services_sign_in(services, viewer)
    await sign_in(user, viewer)
    await user.should_see(marker="fleet-table", retries=50)
    await user.open("/account")
    user.find(marker="sign-out-everywhere").click()
    await user.should_see(marker="sign-in", retries=50)
    assert services.sessions.check(elsewhere) is None
    await user.open("/")
    await user.should_see(marker="sign-in")


async def test_an_admin_sets_another_user_s_password(admin: User, services, admin_account) -> None:
    member = make_account(services, "viewer", org_name=admin_account.org_name)
    member_session = services_sign_in(services, member)
    member_id = services.accounts.user_by_email(email=member.email, org_id=member.org_id).id
    await admin.open("/settings")
    admin.find(marker=f"set-password-{member_id}").click()
    admin.find(marker="reset-password").type("reset by the admin")
    admin.find(marker="reset-password-save").click()
    await admin.should_see("Password set.", retries=50)
    assert services.sessions.check(member_session) is None
    assert services.accounts.authenticate_user(member.email, "reset by the admin") is not None


async def test_a_viewer_cannot_set_passwords_and_an_admin_not_those_of_another_org(user: User, services) -> None:
    viewer = make_account(services, "viewer")
    stranger = make_account(services)
    stranger_id = services.accounts.user_by_email(email=stranger.email, org_id=stranger.org_id).id
    await sign_in(user, viewer)
    await user.should_see(marker="fleet-table", retries=50)
    await user.open("/settings")
    await user.should_see(marker="admins-only")
    await user.should_not_see(marker=f"set-password-{stranger_id}")
    # The service looks the user up in the caller's organisation only.
    admin = make_account(services)
    from admin.services.errors import NotFound

    with pytest.raises(NotFound):
        services.accounts.set_password(org_id=admin.org_id, user_id=stranger_id, password="taken over!")
    assert services.accounts.authenticate_user(stranger.email, PASSWORD) is not None
