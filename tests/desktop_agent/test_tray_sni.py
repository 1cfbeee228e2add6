"""The Linux tray with a menu: the real agent process as a StatusNotifierItem on a real session
D-Bus, with a StatusNotifierWatcher as a panel runs one (written with jeepney: Debian 12 packages
none). The test plays the panel: it reads the menu over com.canonical.dbusmenu (GetLayout) and
clicks its entries (Event "clicked"), as KDE, GNOME's AppIndicator extension or Xfce do."""

from __future__ import annotations

import time

import pytest
from agent_helpers import SniWatcher, history, wait_until

pytestmark = [pytest.mark.tray, pytest.mark.slow, pytest.mark.machine_wide]

MENU = ("/MenuBar", "com.canonical.dbusmenu")
ITEM = ("/StatusNotifierItem", "org.kde.StatusNotifierItem")


@pytest.fixture
def watcher(session_bus):
    panel = SniWatcher(session_bus)
    yield panel
    panel.close()


def layout(watcher: SniWatcher, service: str) -> tuple[int, list[tuple[int, dict]]]:
    """(revision, [(id, properties)]) of the menu's top level, as a panel reads it."""
    revision, (_root, _props, children) = watcher.call(service, *MENU, "GetLayout", "iias", (0, -1, []))
    return revision, [(item_id, {k: v[1] for k, v in props.items()}) for _sig, (item_id, props, _) in children]


def labels(watcher: SniWatcher, service: str) -> list[str]:
    return [props.get("label", "---") for _, props in layout(watcher, service)[1]]


def click(watcher: SniWatcher, service: str, label: str) -> None:
    item_id = next(i for i, props in layout(watcher, service)[1] if props.get("label") == label)
    watcher.call(service, *MENU, "Event", "isvu", (item_id, "clicked", ("s", ""), int(time.time())))


@pytest.mark.parametrize("install", ["pip", "packaged"])
def test_the_menu_on_a_session_bus_sends_a_report_and_shows_the_summary(
    request, install, dunst, watcher, agent_dirs, agent_server, fleet_org, run_agent, machine_id
):
    """As installed with pip (python -m desktop_agent) and as packaged (PyInstaller, what the .deb
    installs): jeepney, the catalogue and the icons must be in the bundle, not only in a venv."""
    program = [str(request.getfixturevalue("packaged_agent"))] if install == "packaged" else None
    env = agent_dirs.env(
        DISPLAY=dunst.display,
        DBUS_SESSION_BUS_ADDRESS=dunst.bus.address,
        LANG="fr_FR.UTF-8",  # the tray speaks the OS's language
        LC_ALL="",
        LC_MESSAGES="",
    )
    # A report an hour: after the first one, only "Send now" sends another.
    agent = run_agent(
        "--server", agent_server.url, "--token", fleet_org.api_key, "--machine-id", machine_id,
        "--interval", "3600", "--heartbeat-interval", "3600", env=env, program=program,
    )  # fmt: skip
    registered = wait_until(lambda: watcher.registered, "the item to register with the StatusNotifierWatcher")
    service, sender = registered[0]
    assert service.startswith("org.kde.StatusNotifierItem-") and sender.startswith(":")

    # The item: its menu's path, its state in words, an icon in several sizes.
    props = {k: v[1] for k, v in watcher.call(service, *ITEM[:1], "org.freedesktop.DBus.Properties", "GetAll", "s", (ITEM[1],))[0].items()}  # fmt: skip
    assert props["Menu"] == "/MenuBar" and props["ItemIsMenu"] is False
    assert props["ToolTip"][2] == "DashFleet"
    assert props["ToolTip"][3].startswith("DashFleet : ")  # French, e.g. "DashFleet : pas de connexion au serveur"
    sizes = sorted(width for width, height, data in props["IconPixmap"] if len(data) == width * height * 4)
    assert sizes == [16, 22, 24, 32, 48, 64]

    agent.wait_for_lines(1, "OK HTTP 200")
    wait_until(lambda: len(history(fleet_org, machine_id)) == 1, "the first report on the server")

    def menu_after_report():
        shown = labels(watcher, service)
        return shown if any(line.startswith("Dernier envoi : ") and "aucun" not in line for line in shown) else None

    shown = wait_until(menu_after_report, "the menu's lines to show the last report")
    assert shown[0].startswith("Santé : ") and "/100" in shown[0]
    assert any(line.startswith("Processeur ") and "Disque" in line for line in shown)
    assert "Serveur : connecté" in shown
    commands = shown[shown.index("---") + 1 :]
    # No dashboard for end users in the config: no "Open dashboard".
    assert commands == [
        "Afficher l’état de santé",
        "Envoyer maintenant",
        "Mettre en pause",
        "Ouvrir le dossier des journaux",
        "---",
        "Quitter",
    ]

    # "Send now" through dbusmenu: a second report reaches the server. (A second later, so that
    # the last report's time, to the second, differs in the menu.)
    revision, before = layout(watcher, service)
    time.sleep(1.1)
    click(watcher, service, "Envoyer maintenant")
    wait_until(lambda: len(history(fleet_org, machine_id)) == 2, "the report that Send now sent")
    agent.wait_for_lines(2, "OK HTTP 200")
    # The menu follows the state while it is open: a new layout revision with the new report's time.
    wait_until(lambda: layout(watcher, service)[0] > revision, "a new menu revision after the report")
    assert [line for line in labels(watcher, service) if line.startswith("Dernier envoi")] != [
        props.get("label") for _, props in before if str(props.get("label")).startswith("Dernier envoi")
    ]

    # The default action (a left click on the icon): the summary, as a notification.
    watcher.call(service, *ITEM, "Activate", "ii", (0, 0))
    # (A busy machine may also have shown a local warning: "Cet ordinateur ...".)
    summaries = wait_until(
        lambda: [n for n in dunst.history() if n["summary"].startswith("DashFleet : ")],
        "the health summary as a notification",
    )
    assert len(summaries) == 1 and "Serveur : connecté" in summaries[0]["body"], summaries

    # Pause, through the menu: the entry becomes Resume.
    click(watcher, service, "Mettre en pause")
    wait_until(lambda: "Reprendre" in labels(watcher, service), "Pause to become Resume")
    assert "En pause : rien n’est envoyé" in labels(watcher, service)

    # Quit, through the menu: the agent ends cleanly.
    click(watcher, service, "Quitter")
    assert agent.proc.wait(timeout=30) == 0
    agent.stop()
    log = agent_dirs.log_file.read_text()
    assert "tray icon shown as a StatusNotifierItem" in log
    assert not any("Traceback" in line for line in agent.errors), agent.output()


def test_open_dashboard_is_there_when_the_config_names_one(
    session_bus, watcher, agent_dirs, agent_server, fleet_org, run_agent, machine_id
):
    agent_dirs.user_config_file.parent.mkdir(parents=True, exist_ok=True)
    agent_dirs.user_config_file.write_text('dashboard_url = "https://intranet.example.com/my-pc"\nlanguage = "en"\n')
    env = agent_dirs.env(DBUS_SESSION_BUS_ADDRESS=session_bus.address, LANG="fr_FR.UTF-8")
    agent = run_agent(
        "--server", agent_server.url, "--token", fleet_org.api_key, "--machine-id", machine_id,
        "--interval", "3600", "--heartbeat-interval", "3600", env=env,
    )  # fmt: skip
    service, _ = wait_until(lambda: watcher.registered, "the item to register")[0]
    shown = labels(watcher, service)
    # The config's language wins over the OS's.
    assert shown[shown.index("---") + 1 :][:3] == ["Show health summary", "Open dashboard", "Send now"]
    assert agent.stop() == 0


def test_without_a_watcher_the_agent_says_so_and_runs_headless(
    session_bus, agent_dirs, agent_server, fleet_org, run_agent, machine_id
):
    """A session bus but no panel that shows StatusNotifierItems, and no X display: headless, said
    in the log (with why the menu-ful tray is not there)."""
    env = agent_dirs.env(DBUS_SESSION_BUS_ADDRESS=session_bus.address)
    agent = run_agent(
        "--server", agent_server.url, "--token", fleet_org.api_key, "--machine-id", machine_id,
        "--interval", "1", "--heartbeat-interval", "3600", env=env,
    )  # fmt: skip
    agent.wait_for_lines(1, "OK HTTP 200")
    assert agent.stop() == 0
    log = agent_dirs.log_file.read_text()
    assert "no StatusNotifierWatcher on the session bus" in log
    assert "running headless" in log
