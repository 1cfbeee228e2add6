"""Signing in through the real sign-in page in a real browser (Selenium), shared by the browser
and scale-out tests."""

from __future__ import annotations

from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

SESSION_COOKIE = "dashfleet_session"


def wait_for_page_connection(driver: WebDriver, timeout: float) -> None:
    """Until the page's socket has finished NiceGUI's handshake. Before that, a page whose handshake
    fails (a server slow to answer, on a loaded machine) reloads itself and drops what was typed."""
    WebDriverWait(driver, timeout).until(lambda d: d.execute_script("return window.did_handshake === true"))


def sign_in(driver: WebDriver, base_url: str, email: str, password: str, path: str = "/", timeout: float = 30) -> str:
    """Signs in as a person would (typing, then the button); returns the session cookie's value."""
    wait = WebDriverWait(driver, timeout, ignored_exceptions=(StaleElementReferenceException,))
    driver.get(base_url + path)
    wait.until(EC.url_contains("/login"))
    wait_for_page_connection(driver, timeout)
    wait.until(EC.element_to_be_clickable((By.CSS_SELECTOR, "input[type=email]"))).send_keys(email)
    driver.find_element(By.CSS_SELECTOR, "input[type=password]").send_keys(password)
    driver.find_element(By.XPATH, "//button[normalize-space()='Sign in']").click()
    wait.until(lambda d: "/login" not in d.current_url)
    wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, ".q-header")))
    cookie = driver.get_cookie(SESSION_COOKIE)
    assert cookie, "signed in without a session cookie"
    return cookie["value"]
