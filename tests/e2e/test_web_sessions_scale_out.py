"""Web sessions across server processes (docs/security.md, findings 7 and 9), in a real Chromium:
two `dashfleet-admin serve` processes on one PostgreSQL; a browser signed in through one is signed
in on the other, and a sign-out or a password change made through either ends it on both, the open page
included (the server sends it to the sign-in page without any click)."""

from __future__ import annotations

import shutil

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

from tests.e2e.test_scale_out import deployment, start_node
from tests.helpers.browser import SESSION_COOKIE as COOKIE
from tests.helpers.browser import sign_in as browser_sign_in
from tests.helpers.servers import service_unavailable

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.browser, pytest.mark.slow]

PASSWORD = "correct horse battery"


def signed_in_on(node, token: str) -> bool:
    """Does this process take the cookie? A page (200) when it does, the sign-in page (303) when not."""
    resp = httpx.get(f"{node.url}/settings", cookies={COOKIE: token}, follow_redirects=False, timeout=30)
    assert resp.status_code in (200, 303), resp.text[:300]
    return resp.status_code == 200


def sign_in(driver, node, email: str) -> str:
    return browser_sign_in(driver, node.url, email, PASSWORD, "/login")


def test_sessions_are_shared_and_ended_across_processes(server_factory, postgres, redis_url, nicegui_driver):
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        service_unavailable("chromium and chromium-driver are not installed (`make sysdeps` installs them)")
    shared = deployment(server_factory, postgres, redis_url)
    node_a, node_b = start_node(server_factory, shared), start_node(server_factory, shared)
    org = node_a.org()
    email = f"admin@{org.name}.example"
    for who in (email, "second@" + org.name + ".example"):
        node_a.cli_json(
            "user", "create", who, "--org", org.name, "--role", "admin", env={"DASHFLEET_PASSWORD": PASSWORD}
        )
    driver = nicegui_driver
    driver.delete_all_cookies()

    token = sign_in(driver, node_a, email)
    assert signed_in_on(node_a, token) and signed_in_on(node_b, token)

    # Sign-out in process A: process B refuses the cookie at once.
    driver.find_element(By.CSS_SELECTOR, "button[aria-label='Sign out']").click()
    WebDriverWait(driver, 20).until(EC.url_contains("/login"))
    assert not signed_in_on(node_b, token) and not signed_in_on(node_a, token)

    # Signed in again (a new session); the password is changed through another process (the CLI):
    # the page left open in process A is sent to the sign-in page by the server, with no click.
    token = sign_in(driver, node_a, email)
    driver.get(node_a.url + "/settings")
    WebDriverWait(driver, 20).until(EC.presence_of_element_located((By.XPATH, "//*[contains(., 'Create key')]")))
    second = node_b.cli_json("user", "set-password", email, env={"DASHFLEET_PASSWORD": "another password!"})
    assert second["sessions_ended"] is True
    WebDriverWait(driver, 20).until(EC.url_contains("/login"))
    assert not signed_in_on(node_a, token) and not signed_in_on(node_b, token)
