"""macOS's word of sleep and wake (desktop_agent/mac_session.py): what each notification makes the
agent do. There is no Mac here: the notifications' handlers are called directly, as the observer
does; where PyObjC is missing (here) attaching says so and changes nothing. The goodbye and the
hello themselves go through the same `going`/`back` as on Windows (test_win_session.py)."""

from __future__ import annotations

import logging

from desktop_agent import mac_session


def recorded() -> tuple[mac_session.SleepNotes, list[str]]:
    said: list[str] = []
    return mac_session.SleepNotes(said.append, lambda: said.append("back")), said


def test_sleep_says_goodbye_and_a_wake_says_hello() -> None:
    notes, said = recorded()
    notes.will_sleep()
    assert said == ["sleep"]
    notes.did_wake()
    assert said == ["sleep", "back"]


def test_a_failing_goodbye_stays_in_python(caplog) -> None:
    """An exception must not cross into Objective-C (it would take the run loop down)."""

    def refuse(reason: str) -> None:
        raise OSError("network is down")

    notes = mac_session.SleepNotes(refuse, lambda: None)
    with caplog.at_level(logging.ERROR, logger="desktop_agent.mac_session"):
        notes.will_sleep()
    assert "handling a sleep notification failed" in caplog.text


def test_without_pyobjc_nothing_is_observed(caplog) -> None:
    said: list[str] = []
    with caplog.at_level(logging.INFO, logger="desktop_agent.mac_session"):
        assert mac_session.attach(said.append, lambda: None) is None
    assert "sleep is not watched (ModuleNotFoundError" in caplog.text
    assert said == []
