"""Fixtures for the web UI's page tests (NiceGUI's `user` fixture: the real pages and services on a
fresh SQLite database per test, driven without a browser; see tests/admin/ui/user_app.py).

Data is arranged through the services, exactly as the API stores it; pages are driven through
what a user does (open, type, click) and checked on what a user sees.
"""

from __future__ import annotations

import re

import pytest
from nicegui import app
from nicegui.testing import User

from admin.services.context import AppServices
from tests.helpers.ui import BROWSER_TIMEZONE, Account, make_account, sign_in


@pytest.fixture
def services(user: User) -> AppServices:
    """The running app's services (the `user` fixture has started it)."""
    user.javascript_rules[re.compile(r".*Intl\.DateTimeFormat.*")] = lambda _: BROWSER_TIMEZONE
    return app.state.dashfleet


@pytest.fixture
def admin_account(services: AppServices) -> Account:
    return make_account(services, "admin")


@pytest.fixture
async def admin(user: User, admin_account: Account) -> User:
    """The `user`, signed in as an admin of a fresh organisation, on the fleet page."""
    await sign_in(user, admin_account)
    await user.should_see(marker="fleet-table", retries=50)
    return user
