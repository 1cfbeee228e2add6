"""Signing in and out, the guard on every page, roles, and the sign-in throttle."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from nicegui import Client, ui
from nicegui import app as nicegui_app
from nicegui.testing import User

from admin.services.sessions import THROTTLE_RULES, delay_after, throttle_keys
from admin.ui import auth
from admin.ui.guard import GUARDED
from tests.helpers.ui import (
    PASSWORD,
    add_report,
    label_text,
    make_account,
    services_sign_in,
    shown_machine_ids,
    sign_in,
)

PROTECTED_PAGES = ["/", "/machine?id=pc-1", "/settings"]


async def test_every_page_without_a_user_shows_the_sign_in_page_and_no_data(user: User, services) -> None:
    account = make_account(services)
    await add_report(services, account, "pc-1")
    for path in PROTECTED_PAGES:
        await user.open(path)
        await user.should_see(marker="sign-in")
        await user.should_not_see("pc-1")
        await user.should_not_see(marker="fleet-table")


async def test_every_page_but_sign_in_is_declared_through_the_one_guard(user: User, services) -> None:
    pages = set(Client.page_routes.values())
    assert pages - {auth.LOGIN_PATH} == set(GUARDED), "a page registered without admin.ui.guard.signed_in_page"
    assert {path.partition("?")[0] for path in PROTECTED_PAGES} <= set(GUARDED)
    # Pages of a feature that is off do not exist (404): every feature on, so every page is there.
    services.settings.feature_messaging = services.settings.feature_commands = True
    for path in GUARDED:  # signed out: each sends the visitor to sign in
        await user.open(path)
        await user.should_see(marker="sign-in")


async def test_signing_in_opens_the_fleet_and_remembers_the_page_asked_for(user: User, services) -> None:
    account = make_account(services)
    await add_report(services, account, "pc-1")
    await user.open("/settings")  # redirected to /login?next=/settings
    user.find(marker="email").type(account.email.upper())  # e-mail in any case
    user.find(marker="password").type(PASSWORD).trigger("keydown.enter")
    await user.should_see(marker="keys-section", retries=30)
    await user.open("/")
    await user.should_see(marker="fleet-table")
    assert shown_machine_ids(user) == ["pc-1"]
    assert label_text(user, "user-email") == account.email


FAILED_SIGN_INS = [
    ("nobody@example.com", PASSWORD),  # unknown user
    (None, "wrong password"),  # known user, wrong password
    (None, ""),  # empty password
    ("", PASSWORD),  # empty e-mail
    (None, "x" * 5000),  # absurdly long: refused before hashing
]


async def test_a_failed_sign_in_says_so_and_opens_no_session(user: User, services) -> None:
    account = make_account(services)
    for email, password in FAILED_SIGN_INS:
        await user.open("/login")
        user.find(marker="email").type(account.email if email is None else email)
        user.find(marker="password").type(password)
        user.find(marker="sign-in").click()
        await user.should_see(marker="login-error", retries=30)
        assert label_text(user, "login-error") in ("Wrong e-mail or password.", "Enter your e-mail and password.")
        await user.open("/")
        await user.should_see(marker="sign-in")
        await user.should_not_see(marker="fleet-table")


async def test_sign_out_ends_the_session(admin: User) -> None:
    admin.find(marker="sign-out").click()
    await admin.should_see(marker="sign-in")
    for path in PROTECTED_PAGES:
        await admin.open(path)
        await admin.should_see(marker="sign-in")


async def test_a_removed_user_is_signed_out_at_once(user: User, services) -> None:
    first = make_account(services)
    second = make_account(services, org_name=first.org_name)
    await sign_in(user, second)
    await user.should_see(marker="fleet-table", retries=30)
    second_id = next(u.id for u in services.accounts.list_users(org_id=first.org_id) if u.email == second.email)
    services.accounts.delete_user(org_id=first.org_id, user_id=second_id)
    await user.open("/")
    await user.should_see(marker="sign-in")


async def test_a_viewer_sees_the_fleet_but_not_the_settings(user: User, services) -> None:
    viewer = make_account(services, "viewer")
    await add_report(services, viewer, "pc-1")
    await sign_in(user, viewer)
    await user.should_see(marker="fleet-table", retries=30)
    await user.should_not_see(marker="nav-settings")
    await user.open("/settings")
    await user.should_see(marker="admins-only")
    await user.should_not_see(marker="keys-section")
    await user.should_not_see(marker="users-section")


def from_address(user: User, address: str) -> None:
    """Later page loads of this simulated browser come from `address` (as uvicorn reports a client
    behind a trusted proxy); the sign-in page counts attempts against the address it was loaded from."""
    user.http_client._transport = httpx.ASGITransport(nicegui_app, client=(address, 40000))


async def attempt(user: User, email: str, password: str, *, expect: str) -> None:
    user.find(marker="email").clear().type(email)
    user.find(marker="password").clear().type(password)
    user.find(marker="sign-in").click()
    await user.should_see(marker="login-error", content=expect, retries=50)
    user.find(marker="login-error").elements.pop().set_text("")


async def test_failed_sign_ins_bring_growing_delays_for_that_e_mail_and_network(user: User, services) -> None:
    account = make_account(services)
    free, _cap = THROTTLE_RULES["pair"]
    from_address(user, "10.0.1.1")
    await user.open("/login")
    for _ in range(free + 1):
        await attempt(user, account.email, "wrong password", expect="Wrong e-mail or password.")
    # Now a wait, even with the right password; it is not checked meanwhile.
    await attempt(user, account.email, PASSWORD, expect="Too many failed sign-ins. Try again in")
    # The owner, from another network, is not kept out by these failures.
    from_address(user, "10.0.1.2")
    await sign_in(user, account)
    await user.should_see(marker="fleet-table", retries=50)


async def test_ipv6_clients_count_per_64_network(user: User, services) -> None:
    account = make_account(services)
    free, _cap = THROTTLE_RULES["pair"]
    for n in range(free + 1):
        from_address(user, f"2001:db8:1:2::{n + 1:x}")  # a new address of the same /64 each time
        await user.open("/login")
        await attempt(user, account.email, "wrong password", expect="Wrong e-mail or password.")
    from_address(user, "2001:db8:1:2:ffff::9")
    await user.open("/login")
    await attempt(user, account.email, PASSWORD, expect="Too many failed sign-ins")
    from_address(user, "2001:db8:1:3::1")  # the next /64: another client
    await sign_in(user, account)
    await user.should_see(marker="fleet-table", retries=50)


def test_nobody_can_keep_an_e_mail_locked_for_long(services) -> None:
    """However many failures from however many networks, the e-mail's own wait stays short:
    growing delays, never a lock-out (the old per-e-mail limit could be kept full for ever)."""
    email = "target@example.com"
    now = 1_000_000.0
    for n in range(200):
        services.sessions.record_failure(throttle_keys(email, f"10.9.{n // 250}.{n % 250}"), now=now)
    _free, email_cap = THROTTLE_RULES["email"]
    wait = services.sessions.wait_before_sign_in(throttle_keys(email, "192.0.2.7"), now=now)
    assert 0 < wait <= email_cap
    assert services.sessions.wait_before_sign_in(throttle_keys(email, "192.0.2.7"), now=now + email_cap) == 0
    # A network that failed 200 times against many e-mails waits much longer (its own cap).
    for n in range(30):
        services.sessions.record_failure(throttle_keys(f"u{n}@example.com", "198.51.100.1"), now=now)
    assert (
        services.sessions.wait_before_sign_in(throttle_keys("other@example.com", "198.51.100.1"), now=now) > email_cap
    )


def test_delays_double_up_to_their_cap() -> None:
    free, cap = THROTTLE_RULES["pair"]
    delays = [delay_after(n, "pair") for n in range(1, free + 15)]
    assert delays[:free] == [0.0] * free
    assert delays[free : free + 3] == [1.0, 2.0, 4.0]
    assert max(delays) == cap


def test_concurrent_password_checks_are_capped(services) -> None:
    account = make_account(services)
    with ThreadPoolExecutor(12) as pool:
        results = list(
            pool.map(
                lambda _: auth.PASSWORD_CHECKS.run(services.accounts.authenticate_user, account.email, PASSWORD),
                range(12),
            )
        )
    assert all(r is not None for r in results)
    assert 1 <= auth.PASSWORD_CHECKS.busiest <= auth.MAX_CONCURRENT_PASSWORD_CHECKS


@pytest.mark.parametrize(
    "wanted,expected",
    [
        ("/settings", "/settings"),
        ("/machine?id=a%2Fb", "/machine?id=a%2Fb"),
        ("https://evil.example/", "/"),
        ("//evil.example/", "/"),
        ("/\\evil.example", "/"),
        ("/login", "/"),
        # Browsers drop tabs and newlines from URLs: "/\t/evil.example" becomes "//evil.example".
        ("/\t/evil.example", "/"),
        ("/\n/evil.example", "/"),
        ("/\r//evil.example", "/"),
        ("/ /evil.example", "/"),
        ("/%2F/evil.example", "/"),
        ("/%5Cevil.example", "/"),
        ("\t//evil.example", "/"),
        ("javascript:alert(1)", "/"),
        ("/machine?id=%09x", "/machine?id=%09x"),  # encoded in the query: a local path still
        ("", "/"),
        (None, "/"),
    ],
)
def test_after_sign_in_only_local_paths_are_followed(wanted, expected) -> None:
    assert auth.safe_next(wanted) == expected


async def test_an_open_page_stops_showing_data_once_the_user_is_removed(user: User, services) -> None:
    first = make_account(services)
    second = make_account(services, org_name=first.org_name)
    await add_report(services, first, "pc-1")
    await sign_in(user, second)
    await user.should_see(marker="fleet-table", retries=50)
    second_id = next(u.id for u in services.accounts.list_users(org_id=first.org_id) if u.email == second.email)
    services.accounts.delete_user(org_id=first.org_id, user_id=second_id)
    timer = next(iter(user.find(ui.timer).elements))
    with user:
        await timer.callback()  # the page's next refresh
    await user.should_see(marker="sign-in")
    await user.should_not_see(marker="fleet-table")


async def test_signing_out_in_one_tab_ends_the_others(admin: User, services, admin_account) -> None:
    other_tab = services_sign_in(services, admin_account)  # the same person, another tab
    services.sessions.end(other_tab)  # what "sign out" there does
    assert services.sessions.check(other_tab) is None
    # This tab's session is another one: it lives on.
    timer = next(iter(admin.find(ui.timer).elements))
    with admin:
        await timer.callback()
    await admin.should_see(marker="fleet-table")


async def test_the_sign_in_page_never_leads_off_site(user: User, services) -> None:
    """/login?next=/%09/evil.example: the browser would drop the tab and go to //evil.example."""
    account = make_account(services)
    await user.open("/login?next=/%09/evil.example")
    user.find(marker="email").type(account.email)
    user.find(marker="password").type(PASSWORD)
    user.find(marker="sign-in").click()
    await user.should_see(marker="fleet-table", retries=50)
    assert user.back_history[-1].endswith("&next=%2F")  # the session's hand-off leads to / only
