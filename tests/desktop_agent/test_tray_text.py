"""What the person reads in the tray, from the service's real state (real reports to the real
server): the menu's health lines and commands, the tooltip, the summary, the warnings' text, in
English and French. (The menu as a panel reads it over D-Bus: test_tray_sni.py.)"""

from __future__ import annotations

import dataclasses
import re
from datetime import datetime

import pytest
from agent_helpers import free_port

from common.health import compute_health
from desktop_agent.deliveries import Message
from desktop_agent.i18n import CATALOGUE, LANGUAGES, PERCENT, Texts, os_language
from desktop_agent.icons import icon_key
from desktop_agent.tray import Tray
from desktop_agent.tray_text import MAX_TOOLTIP, disk_name, health_lines, summary, tooltip, warning_text

EN = Texts("en")
FR = Texts("fr")


def labels(tray: Tray) -> list[str]:
    return [entry.label or "---" for entry in tray.entries()]


def with_disk(sample, percent: float | None):
    """The same reading with the disk `percent` full (a full disk cannot be made on demand)."""
    report = dict(sample.report, disk_percent=percent)
    health = compute_health(report["cpu_percent"], report["ram_percent"], percent)
    return dataclasses.replace(sample, report=report, health=health)


def test_the_menu_after_a_real_report(make_service, tmp_path):
    service = make_service()
    tray = Tray(service, tmp_path)
    assert tray.texts.language in LANGUAGES
    tray.texts = EN
    before = labels(tray)
    assert before[:3] == ["Health: measuring…", "Last report: none yet", "Server: not contacted yet"]

    service.report_cycle()
    state, r = service.state, service.state.sample.report
    shown = labels(tray)
    status = {"ok": "OK", "warning": "Warning", "critical": "Critical"}[state.sample.health.status]
    assert shown[0] == f"Health: {status}, score {state.sample.health.score}/100"
    usage = f"CPU {r['cpu_percent']:.0f}% · RAM {r['ram_percent']:.0f}% · Disk {r['disk_percent']:.0f}%"
    assert usage in shown
    assert f"Last report: {state.last_report_at:%H:%M:%S}" in shown
    assert "Server: connected" in shown
    # Not ok: the reasons between the status and the readings (a busy machine here may be so).
    reasons = shown[1 : shown.index(usage)]
    assert bool(reasons) == (state.sample.health.status != "ok"), shown
    commands = shown[shown.index("---") + 1 :]
    assert commands == ["Show health summary", "Send now", "Pause", "Open log folder", "---", "Quit"]

    service.pause()
    assert "Paused: nothing is sent" in labels(tray) and "Resume" in labels(tray)


def test_the_server_unreachable_and_the_queue(make_service, tmp_path):
    service = make_service(f"http://127.0.0.1:{free_port()}")
    tray = Tray(service, tmp_path)
    tray.texts = EN
    service.report_cycle()
    assert "Server: unreachable (1 report waiting)" in labels(tray)
    assert icon_key(service.state) == "unreachable"
    assert tray.tooltip().startswith("DashFleet: not connected to the server\n")
    service.report_cycle()  # the queue waits out its backoff: two reports now
    assert any(line.startswith("Server: unreachable (") and "reports waiting" in line for line in labels(tray))


def test_open_dashboard_only_with_a_dashboard_url(make_service, tmp_path):
    without = Tray(make_service(), tmp_path)
    with_url = Tray(make_service(dashboard_url="https://intranet.example.com/pc"), tmp_path)
    without.texts = with_url.texts = EN
    assert "Open dashboard" not in labels(without)
    commands = labels(with_url)[labels(with_url).index("---") + 1 :]
    assert commands[:3] == ["Show health summary", "Open dashboard", "Send now"]


def test_a_full_disk_is_said_with_its_name_and_what_to_do(make_service, tmp_path):
    service = make_service()
    service.report_cycle()
    full = with_disk(service.state.sample, 95.4)
    service._update(sample=full)
    tray = Tray(service, tmp_path)
    tray.texts = EN
    assert f"Disk {disk_name()}: 95% full" in labels(tray)
    title, body = warning_text(full, EN)
    assert title in ("This computer needs attention", "This computer has a serious problem")
    assert f"Disk {disk_name()}: 95% full" in body and "Free up space" in body
    title_fr, body_fr = warning_text(full, FR)
    assert f"Disque {disk_name()} : plein à 95\u00a0%" in body_fr and "Libérez de la place" in body_fr
    assert title_fr.startswith("Cet ordinateur ")
    assert tooltip(service.state, icon_key(service.state), EN).count("\n") <= 2
    assert len(tooltip(service.state, icon_key(service.state), FR)) <= MAX_TOOLTIP


def test_a_sensor_that_could_not_be_read_is_said_so_never_as_zero(make_service, tmp_path):
    service = make_service()
    service.report_cycle()
    unread = with_disk(service.state.sample, None)  # what the sampler sends for an unreadable disk
    service._update(sample=unread)
    tray = Tray(service, tmp_path)
    tray.texts = EN
    assert "Disk n/a" in " ".join(labels(tray)) and "Disk 0%" not in " ".join(labels(tray))
    nothing = dataclasses.replace(
        unread, report=dict(unread.report, cpu_percent=None, ram_percent=None), health=compute_health(None, None, None)
    )
    service._update(sample=nothing)
    assert health_lines(service.state, EN)[0] == "Health: Unknown, score ?/100"
    assert health_lines(service.state, FR)[0].startswith("Santé : Inconnue")
    assert icon_key(service.state) == "unreachable"  # grey: nothing measured
    assert "could not be read" in tooltip(service.state, icon_key(service.state), EN)


def test_the_summary_is_the_menus_lines(make_service):
    service = make_service()
    service.report_cycle()
    title, body = summary(service.state, EN)
    assert title.startswith("DashFleet: ")
    assert body.splitlines() == health_lines(service.state, EN)[1:]


def test_last_report_of_another_day_shows_the_date(make_service):
    service = make_service()
    service.report_cycle()
    state = dataclasses.replace(service.state, last_report_at=datetime(2026, 1, 2, 15, 30, 45))
    assert "Last report: 2026-01-02 15:30" in health_lines(state, EN)


def test_messages_from_it_have_their_submenu(make_service, tmp_path):
    service = make_service()
    tray = Tray(service, tmp_path)
    tray.texts = EN
    assert not any(label.startswith("Messages") for label in labels(tray))  # none: no entry
    message = Message(
        delivery_id="d1",
        message_id="m1",
        title="Restart tonight",
        body="Please save your work.\nThe machine restarts at 22:00.",
        severity="warning",
        created=0.0,
        displayed=True,
        acknowledged=False,
    )
    service.set_messages([message])
    entry = next(e for e in tray.entries() if e.label.startswith("Messages"))
    assert entry.label == "Messages (1)"
    (submenu,) = entry.children
    assert submenu.label == "[!] Restart tonight"
    assert [child.label for child in submenu.children] == [
        "Please save your work.",
        "The machine restarts at 22:00.",
        "Show",
        "Acknowledge",
    ]
    service.set_messages([dataclasses.replace(message, acknowledged=True)])
    entry = next(e for e in tray.entries() if e.label.startswith("Messages"))
    assert entry.label == "Messages (0)"
    assert entry.children[0].children[-1].label == "Acknowledged" and not entry.children[0].children[-1].enabled
    ids = [e.id for e in tray.entries()]
    assert len(ids) == len(set(ids))


# --- the catalogue and the language ---


def test_every_language_has_every_text():
    for language in LANGUAGES:
        assert set(CATALOGUE[language]) == set(CATALOGUE["en"]), language
        assert language in PERCENT
        for key, text in CATALOGUE[language].items():
            # The same placeholders as English: a translation must not lose or invent a value.
            assert set(re.findall(r"{(\w+)}", text)) == set(re.findall(r"{(\w+)}", CATALOGUE["en"][key])), key


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"LANG": "fr_FR.UTF-8"}, "fr"),
        ({"LANG": "fr_CA.UTF-8"}, "fr"),
        ({"LC_ALL": "en_GB.UTF-8", "LANG": "fr_FR.UTF-8"}, "en"),  # LC_ALL wins
        ({"LC_MESSAGES": "fr_BE.UTF-8", "LANG": "en_US.UTF-8"}, "fr"),
        ({"LANG": "de_DE.UTF-8"}, "en"),  # not one we have: English
        ({"LANGUAGE": "de:fr"}, "fr"),  # GNU's list of preferences, when nothing else says
        ({"LANG": "C"}, "en"),
        ({}, "en"),
    ],
)
def test_the_language_comes_from_the_os_locale(environ, expected):
    assert os_language(environ) == expected


def test_the_config_chooses_the_language(make_service, tmp_path, monkeypatch):
    monkeypatch.setenv("LC_ALL", "fr_FR.UTF-8")
    assert Tray(make_service(), tmp_path).texts.language == "fr"  # "auto": the OS's
    assert Tray(make_service(language="en"), tmp_path).texts.language == "en"
    french = Tray(make_service(language="fr"), tmp_path)
    assert labels(french)[-1] == "Quitter"
