"""The web UI page tests' helpers: accounts, reports stored as the API stores them, signing in,
and what the table and labels show (NiceGUI's `user` fixture; fixtures in tests/admin/ui/conftest.py)."""

from __future__ import annotations

import asyncio
import secrets
import time
from dataclasses import dataclass

from nicegui import ui
from nicegui.testing import User

from admin.services.context import AppServices
from common.health import compute_health

PASSWORD = "correct horse battery"
# The browser's zone the simulated user reports at sign-in (not UTC, so conversions are tested).
BROWSER_TIMEZONE = "Europe/Paris"


@dataclass
class Account:
    org_id: int
    org_name: str
    email: str
    role: str
    api_key: str


def make_account(services: AppServices, role: str = "admin", org_name: str | None = None) -> Account:
    """A new organisation (unless named) and a user of it."""
    if org_name is None:
        org, key = services.accounts.create_org(f"org-{secrets.token_hex(4)}")
        api_key = key.api_key
    else:
        org, api_key = services.accounts.org_named(org_name), ""
    email = f"{role}-{secrets.token_hex(4)}@example.com"
    services.accounts.create_user(org_id=org.id, email=email, password=PASSWORD, role=role)
    return Account(org_id=org.id, org_name=org.name, email=email, role=role, api_key=api_key)


def report(cpu: float = 12.5, ram: float = 40.0, disk: float = 55.0, **fields: object) -> dict:
    """A report as the agent sends it (the API has validated it before the service sees it)."""
    body = {
        "cpu_percent": cpu,
        "ram_percent": ram,
        "disk_percent": disk,
        "timestamp": "2026-01-02T15:30:45+00:00",
        "ram_used_gib": 6.2,
        "ram_total_gib": 16.0,
        "disk_used_gib": 120.5,
        "disk_total_gib": 512.0,
        "uptime_seconds": 3723,
        "uptime_hms": "01:02:03",
        "health": compute_health(cpu, ram, disk).as_dict(),
        "system": {"os": "Linux", "os_version": "6.1.0", "hostname": "test-host"},
    }
    body.update(fields)
    return body


async def add_report(
    services: AppServices, account: Account, machine_id: str, *, now: float | None = None, **report_fields
) -> None:
    await services.fleet.record_report(
        org_id=account.org_id,
        machine_id=machine_id,
        report=report(**report_fields),
        now=time.time() if now is None else now,
    )


async def sign_in(user: User, account: Account, password: str = PASSWORD) -> None:
    await user.open("/login")
    user.find(marker="email").type(account.email)
    user.find(marker="password").type(password)
    user.find(marker="sign-in").click()


def table_rows(user: User) -> list[dict]:
    return list(user.find(ui.table).elements.pop().rows)


def shown_machine_ids(user: User) -> list[str]:
    return [row["machine_id"] for row in table_rows(user)]


async def shows_machines(user: User, expected: list[str], attempts: int = 100) -> None:
    """Waits (briefly: loads run in a worker thread) until the table shows exactly `expected`."""
    for _ in range(attempts):
        if shown_machine_ids(user) == expected:
            return
        await asyncio.sleep(0.02)
    assert shown_machine_ids(user) == expected


def label_text(user: User, marker: str) -> str:
    return user.find(marker=marker).elements.pop().text


def services_sign_in(services: AppServices, account: Account) -> str:
    """A session of `account`'s user made as the sign-in page makes one (its password checked
    apart); returns the cookie's token."""
    user = services.accounts.user_by_email(email=account.email, org_id=account.org_id)
    token = services.sessions.complete(services.sessions.start(user=user))
    assert token is not None
    return token
