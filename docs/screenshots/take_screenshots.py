"""Screenshots of every web UI page: desktop and phone (390 px) width, light and dark.

Starts a real server (`python -m admin serve` in a temporary directory), makes an organisation and
an admin with the CLI, reports a small fleet through the API (an XSS-looking machine id among
them), signs in with headless Chromium and saves docs/screenshots/<page>-<width>-<mode>.png. It
also fails if any page scrolls sideways at phone width.

    .venv/bin/python docs/screenshots/take_screenshots.py
"""

from __future__ import annotations

import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

import httpx
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
EMAIL, PASSWORD = "admin@acme.example", "correct horse battery"
XSS_ID = "<img src=x onerror=alert(1)>"
SIZES = {"desktop": (1280, 860), "phone": (390, 844)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cli(workdir: Path, env: dict, *args: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-m", "admin", *args], cwd=workdir, env=env, capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout)


def seed(url: str, api_key: str) -> None:
    rng = random.Random(5)
    systems = [("Linux", "6.1.0"), ("Windows", "11"), ("Darwin", "23.4.0")]
    ids = [f"lab-{n:02d}" for n in range(1, 19)] + ["office-win-07", "design-mac-02", XSS_ID]
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {api_key}"}) as client:
        for machine_id in ids:
            os_name, version = rng.choice(systems)
            for _ in range(1):
                cpu, ram, disk = rng.uniform(3, 98), rng.uniform(20, 97), rng.uniform(15, 96)
                client.post(
                    "/api/fleet/report",
                    json={
                        "machine_id": machine_id,
                        "report": {
                            "cpu_percent": round(cpu, 1),
                            "ram_percent": round(ram, 1),
                            "disk_percent": round(disk, 1),
                            "ram_used_gib": round(16 * ram / 100, 1),
                            "ram_total_gib": 16.0,
                            "disk_used_gib": round(512 * disk / 100, 1),
                            "disk_total_gib": 512.0,
                            "uptime_seconds": 93784,
                            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                            "system": {
                                "os": os_name,
                                "os_version": version,
                                "hostname": machine_id[:12],
                                "architecture": "x86_64",
                                "agent_version": "1.0.0",
                                "python_version": "3.11.2",
                                "platform": f"{os_name}-{version}-x86_64",
                            },
                        },
                    },
                ).raise_for_status()
        client.post("/api/fleet/ping", json={"machine_id": "new-laptop"}).raise_for_status()


def backfill_history(workdir: Path, env: dict, machine_id: str, days: int = 7) -> None:
    """A week of past reports for one machine, stored through the server's own service before it
    starts (the API stamps reports with the time of receipt, so it cannot make a past)."""
    code = f"""
import asyncio, math, random
from admin.core.config import Settings
from admin.services.context import AppServices
from admin.services.accounts import AccountService
from common.health import compute_health
async def main():
    services = AppServices.build(Settings())
    org = services.accounts.org_named("Acme")
    services.writer.start()
    now, rng = __import__("time").time(), random.Random(3)
    for step in range({days} * 288, 0, -1):
        t = now - step * 300
        day = math.sin(t / 86400 * 2 * math.pi)
        cpu, ram = max(1, min(99, 35 + 25 * day + rng.uniform(-10, 10))), 55 + 10 * day + rng.uniform(-3, 3)
        disk = 60 + 15 * (1 - step / ({days} * 288))
        report = {{"cpu_percent": cpu, "ram_percent": ram, "disk_percent": disk,
                   "health": compute_health(cpu, ram, disk).as_dict()}}
        await services.fleet.record_report(org_id=org.id, machine_id={machine_id!r}, report=report, now=t)
    await services.writer.stop()
asyncio.run(main())
"""
    subprocess.run([sys.executable, "-c", code], cwd=workdir, env=env, check=True)


def seed_messages(url: str, agent_key: str, admin_key: str) -> None:
    """A message to the whole fleet (one machine acknowledged it) and a script run on lab-01."""
    admin = {"Authorization": f"Bearer {admin_key}"}
    agent = {"Authorization": f"Bearer {agent_key}"}
    body = {"title": "Reboot tonight at 22:00", "body": "Save your work before you leave.", "severity": "warning"}
    httpx.post(f"{url}/api/messages", json={**body, "all": True}, headers=admin)
    script = {"kind": "run_script", "args": {"name": "clear-temp", "args": ["--older-than", "7d"]}}
    httpx.post(f"{url}/api/commands", json={**script, "machine_ids": ["lab-01"]}, headers=admin)
    for item in httpx.get(f"{url}/api/agent/inbox", params={"machine_id": "lab-01"}, headers=agent).json()["items"]:
        path = f"{url}/api/agent/deliveries/{item['delivery_id']}"
        if item["type"] == "message":
            httpx.post(path, json={"machine_id": "lab-01", "state": "acknowledged"}, headers=agent)
            continue
        for state in ("delivered", "running"):
            httpx.post(path, json={"machine_id": "lab-01", "state": state}, headers=agent)
        output = "".join(f"removed /tmp/cache-{n:03d}\n" for n in range(40)) + "40 files, 12.5 MiB freed\n"
        httpx.post(
            path, json={"machine_id": "lab-01", "state": "succeeded", "exit_code": 0, "output": output}, headers=agent
        )


def driver() -> webdriver.Chrome:
    options = webdriver.ChromeOptions()
    for arg in ("headless", "no-sandbox", "disable-dev-shm-usage", "hide-scrollbars"):
        options.add_argument(arg)
    # Debian's chromedriver, so Selenium never tries to download one.
    return webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)


def set_width(browser: webdriver.Chrome, size: str, height: int | None = None) -> None:
    width, default_height = SIZES[size]
    browser.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height or default_height, "deviceScaleFactor": 1, "mobile": size == "phone"},
    )


def full_page_shot(browser: webdriver.Chrome, size: str, path: Path) -> None:
    """The whole page, not only the first screen: the window is made as tall as the page."""
    height = browser.execute_script(
        "return Math.max(document.documentElement.scrollHeight, "
        "document.querySelector('.q-page') ? document.querySelector('.q-page')"
        ".scrollHeight + 80 : 0)"
    )
    set_width(browser, size, max(height, SIZES[size][1]))
    time.sleep(0.5)
    browser.save_screenshot(str(path))
    set_width(browser, size)


def wait_for(browser: webdriver.Chrome, css: str) -> None:
    WebDriverWait(browser, 10).until(EC.presence_of_element_located((By.CSS_SELECTOR, css)))


def sideways_scroll(browser: webdriver.Chrome) -> int:
    return browser.execute_script("return document.documentElement.scrollWidth - window.innerWidth")


def main() -> None:
    workdir = Path(tempfile.mkdtemp(prefix="dashfleet-shots-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("DASHFLEET_")}
    env.update(
        PYTHONPATH=str(REPO),
        DASHFLEET_PASSWORD=PASSWORD,
        DASHFLEET_FEATURE_MESSAGING="true",
        DASHFLEET_FEATURE_COMMANDS="true",
    )
    api_key = cli(workdir, env, "org", "create", "Acme")["api_key"]
    cli(workdir, env, "user", "create", EMAIL, "--org", "Acme", "--role", "admin")
    cli(workdir, env, "user", "create", "viewer@acme.example", "--org", "Acme")
    backfill_history(workdir, env, "lab-01")
    admin_key = cli(workdir, env, "key", "create", "--org", "Acme", "--scope", "admin", "--scope", "read")["api_key"]
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, "-m", "admin", "serve", "--port", str(port)],
        cwd=workdir,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    browser = driver()
    problems = []
    try:
        for _ in range(100):
            try:
                httpx.get(f"{url}/api/status")
                break
            except httpx.TransportError:
                time.sleep(0.1)
        # A rule before the reports, so the alerts page, the bell and the fleet's badges have
        # something firing (rules are checked as reports arrive).
        rule = {"name": "CPU above 90 %", "kind": "cpu", "threshold": 90, "clear_below": 80, "severity": "warning"}
        made = httpx.post(f"{url}/api/alerts/rules", json=rule, headers={"Authorization": f"Bearer {admin_key}"})
        made.raise_for_status()
        seed(url, api_key)
        seed_messages(url, api_key, admin_key)
        pages = {
            "fleet": "/",
            "machine": "/machine?id=lab-01",
            "settings": "/settings",
            "messages": "/messages",
            "alerts": "/alerts",
            "alert-rules": "/alerts/rules",
            "audit": "/audit",
            "xss": "/machine?id=" + quote(XSS_ID, safe=""),
        }
        for mode in ("light", "dark"):
            browser.delete_all_cookies()
            set_width(browser, "desktop")
            browser.get(f"{url}/login")
            wait_for(browser, "input[type=email]")
            browser.save_screenshot(str(HERE / f"login-desktop-{mode}.png")) if mode == "light" else None
            browser.find_element(By.CSS_SELECTOR, "input[type=email]").send_keys(EMAIL)
            browser.find_element(By.CSS_SELECTOR, "input[type=password]").send_keys(PASSWORD + "\n")
            wait_for(browser, ".q-table")
            if mode == "dark":
                browser.find_element(By.CSS_SELECTOR, "button[aria-label='Toggle dark mode']").click()
                time.sleep(0.5)
            for size in SIZES:
                set_width(browser, size)
                for name, path in pages.items():
                    browser.get(url + path)
                    wait_for(browser, ".q-header")
                    time.sleep(1.0)  # charts draw after the page
                    if size == "phone" and (extra := sideways_scroll(browser)) > 0:
                        problems.append(f"{name} ({mode}) scrolls sideways by {extra} px at 390 px")
                    full_page_shot(browser, size, HERE / f"{name}-{size}-{mode}.png")
        browser.delete_all_cookies()
        set_width(browser, "phone")
        browser.get(f"{url}/login")
        wait_for(browser, "input[type=email]")
        browser.save_screenshot(str(HERE / "login-phone-light.png"))
    finally:
        browser.quit()
        server.terminate()
        server.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)
    print("\n".join(problems) or "no page scrolls sideways at 390 px")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
