"""Windows's word of sleep, log-off and shutdown (desktop_agent/win_session.py): what each window
message makes the agent do, and what the window answers. There is no Windows here, so the messages
are handed to the handlers directly, as pystray's window procedure would (handler(wParam, lParam));
the goodbyes and the hello go to the real server through the agent's own service."""

from __future__ import annotations

import pytest
from agent_helpers import machine, wait_until

from desktop_agent import win_session as ws
from desktop_agent.__main__ import _power_events

ENDSESSION_CRITICAL = 0x40000000
PBT_APMRESUMESUSPEND = 0x0007
PBT_POWERSETTINGCHANGE = 0x8013


def recorded() -> tuple[ws.SessionMessages, list[str]]:
    said: list[str] = []
    return ws.SessionMessages(said.append, lambda: said.append("back")), said


@pytest.mark.parametrize(
    ("message", "wparam", "lparam", "answer", "said"),
    [
        # Never hold up a log-off or shutdown (pystray would answer 0: "do not end the session").
        (ws.WM_QUERYENDSESSION, 0, 0, 1, []),
        (ws.WM_QUERYENDSESSION, 0, ws.ENDSESSION_LOGOFF, 1, []),
        (ws.WM_ENDSESSION, 1, ws.ENDSESSION_LOGOFF, 0, ["logoff"]),
        (ws.WM_ENDSESSION, 1, ws.ENDSESSION_LOGOFF | ENDSESSION_CRITICAL, 0, ["logoff"]),
        (ws.WM_ENDSESSION, 1, 0, 0, ["shutdown"]),
        (ws.WM_ENDSESSION, 1, ENDSESSION_CRITICAL, 0, ["shutdown"]),
        (ws.WM_ENDSESSION, 0, ws.ENDSESSION_LOGOFF, 0, []),  # cancelled by another program: nothing
        (ws.WM_POWERBROADCAST, ws.PBT_APMSUSPEND, 0, 1, ["sleep"]),
        (ws.WM_POWERBROADCAST, ws.PBT_APMRESUMEAUTOMATIC, 0, 1, ["back"]),
        (ws.WM_POWERBROADCAST, PBT_APMRESUMESUSPEND, 0, 1, []),  # the same resume again: one hello
        (ws.WM_POWERBROADCAST, PBT_POWERSETTINGCHANGE, 0, 1, []),
    ],
)
def test_each_message_and_what_it_does(message, wparam, lparam, answer, said) -> None:
    messages, done = recorded()
    assert messages.handlers()[message](wparam, lparam) == answer
    assert done == said


def test_attach_adds_to_the_icons_table_and_keeps_its_own() -> None:
    class Win32Icon:  # pystray's Windows icon keeps its window's handlers in this table
        def __init__(self) -> None:
            self._message_handlers = {0x004E: lambda wparam, lparam: 7}  # WM_NOTIFY: its clicks

    icon = Win32Icon()
    said: list[str] = []
    assert ws.attach(icon, said.append, lambda: said.append("back"))
    assert set(icon._message_handlers) == {0x004E, ws.WM_QUERYENDSESSION, ws.WM_ENDSESSION, ws.WM_POWERBROADCAST}
    assert icon._message_handlers[0x004E](0, 0) == 7
    icon._message_handlers[ws.WM_POWERBROADCAST](ws.PBT_APMSUSPEND, 0)
    assert said == ["sleep"]
    assert not ws.attach(object(), said.append, lambda: None)  # no table: nothing changes


def test_a_log_off_says_goodbye_to_the_server_and_a_resume_says_hello(make_service, fleet_org, machine_id) -> None:
    service = make_service(interval=3600)  # no report of its own but the first
    goodbye = {"reason": "stop"}
    messages = ws.SessionMessages(*_power_events(service, goodbye))
    service.start()
    wait_until(lambda: machine(fleet_org, machine_id), "the first report")
    first_seen = machine(fleet_org, machine_id)["last_seen"]

    messages.power_broadcast(ws.PBT_APMSUSPEND, 0)
    assert machine(fleet_org, machine_id)["away"] is not None  # said before the message returned
    assert goodbye["reason"] == "stop"  # sleep is not the end: a later stop says "stop"

    messages.power_broadcast(ws.PBT_APMRESUMEAUTOMATIC, 0)
    back = wait_until(lambda: (m := machine(fleet_org, machine_id))["away"] is None and m, "the hello after a resume")
    assert back["last_seen"] > first_seen

    messages.end_session(1, ws.ENDSESSION_LOGOFF)
    assert machine(fleet_org, machine_id)["away"] is not None
    assert goodbye["reason"] == "logoff"  # the stop that follows says the same
