"""The web UI in a real browser (Debian's Chromium, headless) against a real server process.

Machines are reported through the real HTTP API with real keys; people sign in through the real
sign-in page. Waiting for the page (WebDriverWait) is not a timing assertion: each wait has a
generous ceiling and only guards against hanging.
"""

from __future__ import annotations

import shlex
import shutil
from dataclasses import dataclass
from urllib.parse import quote

import pytest
from selenium.common.exceptions import NoAlertPresentException, StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

from tests.helpers.api import Org, sample_report
from tests.helpers.browser import sign_in as browser_sign_in
from tests.helpers.servers import ServerProcess, service_unavailable

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PASSWORD = "correct horse battery"
# onerror would set a flag (and alert) if the id were ever parsed as HTML.
XSS_ID = '<img src=x onerror="window.pwned=1;alert(1)">'
WAIT_SECONDS = 30
# Settings unlike the defaults, so agreement with /api/config cannot be a coincidence.
CUSTOM = {
    "refresh_interval_ms": 1500,
    "fleet_ttl_seconds": 7200,
    "offline_after_seconds": 120,
    "feature_messaging": True,
    "feature_commands": False,
}


@pytest.fixture(scope="session", autouse=True)
def _chromium_installed() -> None:
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        service_unavailable("chromium and chromium-driver are not installed (`make sysdeps` installs them)")


@pytest.fixture(scope="module")
def ui_server(module_server_factory) -> ServerProcess:
    return module_server_factory("sqlite", **CUSTOM)


@dataclass
class Account:
    """An organisation on the UI server with an admin user and a key that may delete machines."""

    org: Org
    email: str
    admin_key: str = ""

    def clear_machines(self) -> None:
        for machine_id in self.org.machine_ids(limit=1000):
            resp = self.org.request(
                "DELETE", "/api/fleet/machine", params={"machine_id": machine_id}, key=self.admin_key
            )
            assert resp.status_code == 200, resp.text


def make_admin(server: ServerProcess, *, admin_key: bool = True) -> Account:
    org = server.org()
    email = f"admin@{org.name}.example"
    server.cli_json("user", "create", email, "--org", org.name, "--role", "admin", env={"DASHFLEET_PASSWORD": PASSWORD})
    key = server.make_key(org.name, "admin")["api_key"] if admin_key else ""
    return Account(org=org, email=email, admin_key=key)


@pytest.fixture(scope="module")
def module_account(ui_server) -> Account:
    return make_admin(ui_server)


@pytest.fixture
def account(module_account) -> Account:
    """The module's organisation with no machines (the CLI is slow: one organisation per file)."""
    module_account.clear_machines()
    return module_account


@pytest.fixture(scope="module")
def stranger(ui_server) -> Org:
    return ui_server.org()


@pytest.fixture
def browser(nicegui_driver: WebDriver) -> WebDriver:
    """NiceGUI's session Chrome, signed out and at desktop width for each test."""
    nicegui_driver.delete_all_cookies()
    nicegui_driver.set_page_load_timeout(30)
    nicegui_driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    nicegui_driver.set_window_size(1280, 900)
    return nicegui_driver


def wait(browser: WebDriver):
    # The table is re-rendered by every refresh: an element found a moment ago may be gone.
    return WebDriverWait(browser, WAIT_SECONDS, ignored_exceptions=(StaleElementReferenceException,))


def sign_in(browser: WebDriver, server: ServerProcess, email: str, path: str = "/") -> None:
    browser_sign_in(browser, server.url, email, PASSWORD, path, timeout=WAIT_SECONDS)


def machine_cells(browser: WebDriver) -> list[str]:
    return [a.text for a in browser.find_elements(By.CSS_SELECTOR, ".q-table tbody a[data-testid=machine-link]")]


def shows_machines(browser: WebDriver, expected: list[str]) -> None:
    wait(browser).until(lambda b: machine_cells(b) == expected, f"the table never showed {expected}")


def test_the_fleet_shows_reported_machines_and_new_reports_without_reloading(
    browser, ui_server, account, stranger
) -> None:
    org, email = account.org, account.email
    assert org.report("pc-1").status_code == 200
    assert org.ping("pc-2").status_code == 200  # known from a heartbeat only
    assert stranger.report("their-secret-pc").status_code == 200
    sign_in(browser, ui_server, email)
    shows_machines(browser, ["pc-1", "pc-2"])
    document = browser.execute_script("return window.document")
    before = browser.find_element(By.XPATH, "//*[starts-with(normalize-space(), 'Updated ')]").text

    assert org.report("pc-0-new").status_code == 200
    shows_machines(browser, ["pc-0-new", "pc-1", "pc-2"])  # the timer's refresh, no reload
    assert browser.execute_script("return window.document") == document
    assert browser.find_element(By.XPATH, "//*[starts-with(normalize-space(), 'Updated ')]").text != before
    assert "their-secret-pc" not in browser.page_source
    # Hovering the relative time shows the exact time.
    text, title = browser.execute_script(  # one read: the next refresh may redraw the cell
        "const c = document.evaluate('//tbody/tr[1]/td[last()]/span', document, null, 9, null).singleNodeValue;"
        "return [c.innerText.trim(), c.getAttribute('title')]"
    )
    assert text == "just now" or text.endswith("s ago")
    assert title.startswith("20")


def test_a_hostile_machine_id_stays_text(browser, ui_server, account) -> None:
    org, email = account.org, account.email
    assert org.report(XSS_ID).status_code == 200
    sign_in(browser, ui_server, email)
    shows_machines(browser, [XSS_ID])
    browser.get(ui_server.url + "/machine?id=" + quote(XSS_ID, safe=""))
    wait(browser).until(EC.text_to_be_present_in_element((By.CSS_SELECTOR, ".q-page"), XSS_ID))
    assert browser.execute_script("return window.pwned") is None
    assert browser.find_elements(By.CSS_SELECTOR, ".q-page img[src=x]") == []
    with pytest.raises(NoAlertPresentException):
        browser.switch_to.alert.text  # noqa: B018 - reading it is the check


def test_the_fleet_table_shows_a_machines_alerts_as_a_badge(browser, ui_server, account) -> None:
    org, email = account.org, account.email
    resp = org.post(
        "/api/alerts/rules",
        key=account.admin_key,
        json={"name": XSS_ID, "kind": "cpu", "threshold": 50, "severity": "critical"},
    )
    assert resp.status_code == 201, resp.text
    try:
        assert org.report("hot-pc", sample_report(cpu_percent=99)).status_code == 200
        assert org.report("calm-pc").status_code == 200
        sign_in(browser, ui_server, email)
        shows_machines(browser, ["calm-pc", "hot-pc"])
        # Read in one script: the table redraws on its refresh, and an element found in one call
        # may be gone by the next (a stale element).
        badges = wait(browser).until(
            lambda b: b.execute_script(
                "return [...document.querySelectorAll('[data-testid=alerts-badge]')]"
                ".map(e => [e.innerText.trim(), e.getAttribute('title')])"
            ),
            "no alert badge was drawn",
        )
        assert badges == [["1 critical", "1 firing, worst critical"]]  # on hot-pc's row only
        assert browser.execute_script("return window.pwned") is None
    finally:
        org.request("DELETE", f"/api/alerts/rules/{resp.json()['rule_id']}", key=account.admin_key)


def test_without_signing_in_every_page_leads_to_sign_in_and_shows_no_data(browser, ui_server, account) -> None:
    org = account.org
    assert org.report("private-pc").status_code == 200
    for path in ("/", "/machine?id=private-pc", "/settings"):
        browser.get(ui_server.url + path)
        wait(browser).until(EC.presence_of_element_located((By.CSS_SELECTOR, "input[type=password]")))
        assert "/login" in browser.current_url
        assert "private-pc" not in browser.page_source


def test_sign_out(browser, ui_server, account) -> None:
    org, email = account.org, account.email
    assert org.report("pc-1").status_code == 200
    sign_in(browser, ui_server, email)
    shows_machines(browser, ["pc-1"])
    browser.find_element(By.CSS_SELECTOR, "button[aria-label='Sign out']").click()
    wait(browser).until(EC.presence_of_element_located((By.CSS_SELECTOR, "input[type=password]")))
    browser.get(ui_server.url + "/")
    wait(browser).until(EC.presence_of_element_located((By.CSS_SELECTOR, "input[type=password]")))
    assert "pc-1" not in browser.page_source


def test_a_wrong_password_is_refused(browser, ui_server, account) -> None:
    email = account.email
    browser.get(ui_server.url + "/login")
    wait(browser).until(EC.element_to_be_clickable((By.CSS_SELECTOR, "input[type=email]"))).send_keys(email)
    browser.find_element(By.CSS_SELECTOR, "input[type=password]").send_keys("not the password\n")
    wait(browser).until(
        EC.text_to_be_present_in_element((By.CSS_SELECTOR, ".text-negative"), "Wrong e-mail or password.")
    )
    assert "/login" in browser.current_url


def test_an_empty_table_says_why_once(browser, ui_server) -> None:
    """Our message replaces Quasar's generic "No data available", for an empty fleet and a filter."""
    account = make_admin(ui_server, admin_key=False)  # its own user: the filter it types is remembered
    sign_in(browser, ui_server, account.email)

    def page_text(b: WebDriver) -> str:
        return b.find_element(By.CSS_SELECTOR, ".q-page").text

    wait(browser).until(lambda b: "No machines yet" in page_text(b))
    assert "No data available" not in page_text(browser)
    assert account.org.report("pc-1").status_code == 200
    shows_machines(browser, ["pc-1"])  # the next refresh
    search = browser.find_element(By.CSS_SELECTOR, "input[placeholder='Search machine id or hostname']")
    search.send_keys("nothing-like-this")
    wait(browser).until(lambda b: "No machine matches these filters." in page_text(b))
    text = page_text(browser)
    assert "No data available" not in text and text.count("No machine matches these filters.") == 1, text
    assert machine_cells(browser) == []


def test_the_phone_layout_does_not_scroll_sideways(browser, ui_server, account) -> None:
    org, email = account.org, account.email
    assert org.report("a-machine-with-a-rather-long-name-" + "x" * 120).status_code == 200
    sign_in(browser, ui_server, email)
    browser.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride", {"width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": True}
    )
    for path in ("/", "/machine?id=" + quote("a-machine-with-a-rather-long-name-" + "x" * 120), "/settings"):
        browser.get(ui_server.url + path)
        wait(browser).until(EC.presence_of_element_located((By.CSS_SELECTOR, ".q-header")))
        wait(browser).until(EC.presence_of_element_located((By.CSS_SELECTOR, ".q-card")))
        overflow = browser.execute_script("return document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{path} scrolls sideways by {overflow} px at 390 px"


@pytest.mark.parametrize(
    "settings",
    [
        CUSTOM,
        {
            "refresh_interval_ms": 5000,
            "fleet_ttl_seconds": 86400,
            "offline_after_seconds": 300,
            "feature_messaging": False,
            "feature_commands": True,
        },
    ],
    ids=["custom", "defaults-but-commands"],
)
def test_the_ui_runs_with_the_settings_api_config_serves(
    browser, ui_server, module_account, server_factory, settings
) -> None:
    server = ui_server if settings is CUSTOM else server_factory("sqlite", **settings)
    config = server.http.get("/api/config").json()
    account = module_account if server is ui_server else make_admin(server, admin_key=False)
    org, email = account.org, account.email
    assert org.report("pc-1").status_code == 200
    sign_in(browser, server, email)
    table = wait(browser).until(EC.presence_of_element_located((By.CSS_SELECTOR, "[data-refresh-ms]")))
    assert (
        int(table.get_attribute("data-refresh-ms")) == config["REFRESH_INTERVAL_MS"] == settings["refresh_interval_ms"]
    )
    assert int(table.get_attribute("data-ttl-s")) == config["FLEET_TTL_SECONDS"] == settings["fleet_ttl_seconds"]
    browser.get(server.url + "/machine?id=pc-1")
    wait(browser).until(EC.presence_of_element_located((By.CSS_SELECTOR, "canvas")))
    page = browser.find_element(By.CSS_SELECTOR, ".q-page").text
    assert ("Messages to this machine" in page) == config["FEATURES"]["messaging"]
    assert ("Commands to this machine" in page) == config["FEATURES"]["commands"]


# Runs before each document's own scripts: every content-security-policy violation is recorded.
RECORD_CSP_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener('securitypolicyviolation',
    e => window.__cspViolations.push(e.violatedDirective + ' ' + e.blockedURI));
"""


def test_pages_and_api_docs_work_under_the_content_security_policy(browser, ui_server, account) -> None:
    """Finding 13: the policy blocks nothing the UI needs, and /api/docs renders from local files."""
    assert account.org.report("pc-1").status_code == 200
    script = browser.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": RECORD_CSP_VIOLATIONS})
    try:
        sign_in(browser, ui_server, account.email)
        shows_machines(browser, ["pc-1"])
        assert browser.execute_script("return window.__cspViolations") == []
        for path, ready in (
            ("/machine?id=pc-1", (By.CSS_SELECTOR, ".q-page canvas")),  # the history chart drew
            ("/settings", (By.XPATH, "//button[contains(., 'Create key')]")),
            ("/api/docs", (By.CSS_SELECTOR, ".swagger-ui .info .title")),
        ):
            browser.get(ui_server.url + path)
            wait(browser).until(EC.presence_of_element_located(ready), path)
            assert browser.execute_script("return window.__cspViolations") == [], path
        assert "DashFleet" in browser.find_element(By.CSS_SELECTOR, ".swagger-ui .info .title").text
    finally:
        browser.execute_cdp_cmd("Page.removeScriptToEvaluateOnNewDocument", {"identifier": script["identifier"]})


def test_an_install_link_made_in_the_browser_serves_its_script_and_fits_a_phone(browser, ui_server, account) -> None:
    """Without DASHFLEET_PUBLIC_URL, links are made only from a browser on the server itself."""
    sign_in(browser, ui_server, account.email, "/install-agent")
    browser.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride", {"width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": True}
    )
    browser.get(ui_server.url + "/install-agent")
    wait(browser).until(EC.element_to_be_clickable((By.XPATH, "//button[contains(., 'Create install link')]"))).click()
    command = (
        wait(browser)
        .until(
            EC.visibility_of_element_located(
                (By.XPATH, "//div[contains(text(), '/install/') and contains(text(), '.sh')]")
            )
        )
        .text
    )
    # The test server is plain http://: the command allows it explicitly (the script refuses it otherwise).
    assert command.startswith(f"curl -sSL {ui_server.url}/install/"), command
    assert command.endswith(".sh | sudo env DASHFLEET_ALLOW_HTTP=1 sh"), command
    overflow = browser.execute_script("return document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"/install-agent scrolls sideways by {overflow} px at 390 px"
    browser.find_element(By.XPATH, "//div[@role='tab'][contains(., 'Windows')]").click()
    windows = wait(browser).until(EC.visibility_of_element_located((By.XPATH, "//div[contains(text(), '.ps1')]"))).text
    assert "irm -UseBasicParsing" in windows

    script = ui_server.http.get(shlex.split(command)[2])  # the URL curl fetches
    assert script.status_code == 200 and "enroll_token = " in script.text


def test_a_message_sent_in_the_browser_shows_its_delivery_change_live(browser, ui_server, account) -> None:
    """The machine page's Messages panel in Chromium: send, then the state the agent posts appears
    without reloading; the title stays text. (CUSTOM has messaging on, commands off.)"""
    assert account.org.ping("pc-msg").status_code == 200
    sign_in(browser, ui_server, account.email, "/machine?id=pc-msg")
    wait(browser).until(EC.presence_of_element_located((By.XPATH, "//*[contains(text(), 'Messages to this machine')]")))
    title = browser.find_element(By.XPATH, "//label[.//*[contains(text(), 'Title')]]//input")
    title.send_keys(XSS_ID)
    browser.find_element(By.XPATH, "//button[.//*[contains(text(), 'Send')]]").click()
    wait(browser).until(EC.presence_of_element_located((By.XPATH, "//*[contains(text(), 'queued')]")))
    inbox = account.org.get("/api/agent/inbox", params={"machine_id": "pc-msg"}).json()["items"]
    delivery = inbox[0]["delivery_id"]
    assert inbox[0]["message"]["title"] == XSS_ID
    posted = account.org.post(f"/api/agent/deliveries/{delivery}", json={"machine_id": "pc-msg", "state": "displayed"})
    assert posted.status_code == 200
    wait(browser).until(EC.presence_of_element_located((By.XPATH, "//*[contains(text(), 'displayed')]")))
    assert browser.execute_script("return window.pwned === undefined")
    assert "Commands to this machine" not in browser.find_element(By.CSS_SELECTOR, ".q-page").text
