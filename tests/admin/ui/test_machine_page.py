"""The machine page: details, health reasons, history charts, feature sections and removal."""

from __future__ import annotations

import asyncio
import time
from urllib.parse import quote

import pytest
from nicegui import ui
from nicegui.testing import User

from admin.services.errors import NotFound
from tests.helpers.ui import add_report, label_text, make_account, sign_in

XSS_ID = "<img src=x onerror=alert(1)>"


def page_of(machine_id: str) -> str:
    return "/machine?id=" + quote(machine_id, safe="")


def chart_series(user: User) -> dict[str, list]:
    """Each metric's mean line by name ([time, mean, min, max] points), and every series by id."""
    chart = user.find(marker="history-chart").elements.pop()
    series = chart.options["series"]
    return {s["name"]: s["data"] for s in series if s["id"].endswith("-mean")} | {s["id"]: s["data"] for s in series}


async def samples_label_becomes(user: User, start: str) -> str:
    for _ in range(100):
        text = label_text(user, "history-samples")
        if text.startswith(start):
            return text
        await asyncio.sleep(0.02)
    raise AssertionError(f"history label is {label_text(user, 'history-samples')!r}, not {start!r}...")


async def test_shows_status_health_with_reasons_report_and_system(admin: User, services, admin_account) -> None:
    await add_report(
        services,
        admin_account,
        "pc-1",
        cpu=97,
        ram=50,
        disk=91,
        hardware_id_extra="kept",
        system={
            "os": "Windows",
            "os_version": "11",
            "hostname": "PC-1",
            "architecture": "AMD64",
            "agent_version": "1.0.0",
            "hardware_id": "hw-42",
        },
    )
    await admin.open(page_of("pc-1"))
    assert label_text(admin, "machine-id") == "pc-1"
    assert admin.find(marker="machine-status").elements.pop().text == "online"
    assert admin.find(marker="health-status").elements.pop().text == "critical"
    reasons = [label.text for label in admin.find(marker="health-reason").elements]
    assert "CPU 97% (critical at 95%)" in reasons and "Disk 91% (warning at 90%)" in reasons
    assert label_text(admin, "report-cpu_percent") == "97%"
    assert label_text(admin, "system-os_version") == "11"
    assert label_text(admin, "system-hardware_id") == "hw-42"
    await admin.should_see("hardware_id_extra")  # a field a newer agent sends is shown, as text


async def test_a_machine_known_only_from_heartbeats(admin: User, services, admin_account) -> None:
    await services.fleet.record_ping(
        org_id=admin_account.org_id, machine_id="quiet", hardware_id="hw-1", now=time.time()
    )
    await admin.open(page_of("quiet"))
    await admin.should_see("No report yet: this machine is known from heartbeats only.")
    assert label_text(admin, "system-hardware_id") == "hw-1"


async def test_another_organisations_or_an_unknown_machine_shows_nothing(admin: User, services) -> None:
    stranger = make_account(services)
    await add_report(services, stranger, "pc-1")
    for machine_id in ("pc-1", "nope", "", "x" * 5000, XSS_ID):
        await admin.open(page_of(machine_id))
        await admin.should_see(marker="machine-missing")
        await admin.should_not_see(marker="report-card")
        await admin.should_not_see(marker="history-card")
        await admin.should_not_see("test-host")


async def test_an_odd_machine_id_is_shown_as_text(admin: User, services, admin_account) -> None:
    await add_report(services, admin_account, XSS_ID)
    await admin.open(page_of(XSS_ID))
    assert label_text(admin, "machine-id") == XSS_ID
    await admin.should_not_see(ui.html)
    await admin.should_not_see(ui.markdown)


async def test_history_charts_the_last_hour_day_and_week(admin: User, services, admin_account) -> None:
    now = time.time()
    for age_hours, cpu in ((150, 70.0), (30, 60.0), (5, 50.0), (0.5, 40.0), (0, 30.0)):
        await add_report(services, admin_account, "pc-1", cpu=cpu, now=now - age_hours * 3600)
    services.history.roll_up(settle=0)  # what the server's background job does (the week's tier)
    await admin.open(page_of("pc-1"))
    await samples_label_becomes(admin, "3 samples in the last day")  # the default span
    assert [point[1] for point in chart_series(admin)["CPU"] if point[1] is not None] == [50.0, 40.0, 30.0]
    admin.find(marker="history-span").elements.pop().set_value("hour")
    await samples_label_becomes(admin, "2 samples in the last hour")
    admin.find(marker="history-span").elements.pop().set_value("week")
    text = await samples_label_becomes(admin, "5 samples in the last week")
    assert text.endswith("each point is the mean of 15 min, the band its min–max (from 5-minute rollups)"), text
    cpu = chart_series(admin)["CPU"]
    assert [point[1] for point in cpu if point[1] is not None] == [70.0, 60.0, 50.0, 40.0, 30.0]
    assert any(point[1] is None for point in cpu), "a silence of days breaks the line"


async def test_the_sample_count_is_singular_for_one_sample(admin: User, services, admin_account) -> None:
    now = time.time()
    await add_report(services, admin_account, "pc-1", now=now - 2 * 86400)  # only in the week
    await add_report(services, admin_account, "pc-1", now=now)
    services.history.roll_up(settle=0)
    await admin.open(page_of("pc-1"))
    text = await samples_label_becomes(admin, "1 sample")
    assert text.startswith("1 sample in the last day;"), text
    admin.find(marker="history-span").elements.pop().set_value("week")
    await samples_label_becomes(admin, "2 samples in the last week;")


async def test_the_year_draws_each_mean_inside_its_min_max_band(admin: User, services, admin_account) -> None:
    """Months back, from the hourly tier: a one-minute peak is still the band's top."""
    now = time.time()
    hour = (now // 3600 - 200 * 24) * 3600  # 200 days ago
    for minute, cpu in ((1, 10.0), (2, 95.0), (3, 20.0)):
        await add_report(services, admin_account, "pc-1", cpu=cpu, now=hour + 60 * minute)
    await add_report(services, admin_account, "pc-1", cpu=50.0, now=hour - 100 * 86400)
    await add_report(services, admin_account, "pc-2", cpu=99.0, now=hour + 60)  # another machine's
    await add_report(services, admin_account, "pc-1", cpu=30.0, now=now)  # seen now: not expired
    services.history.roll_up(settle=0)
    await admin.open(page_of("pc-1") + "&span=year")
    text = await samples_label_becomes(admin, "5 samples in the last year")
    assert text.endswith("each point is the mean of 12 h, the band its min–max (from hourly rollups)"), text
    series = chart_series(admin)
    means = [p[1:] for p in series["CPU"] if p[1] is not None]
    assert means == [[50.0, 50.0, 50.0], [41.7, 10.0, 95.0], [30.0, 30.0, 30.0]]
    assert any(p[1] is None for p in series["CPU"]), "a hundred silent days break the line"
    assert [v for _, v in series["cpu-low"] if v is not None] == [50.0, 10.0, 30.0]
    assert [v for _, v in series["cpu-band"] if v is not None] == [0.0, 85.0, 0.0]  # stacked: up to the max


async def test_an_admin_removes_a_machine(admin: User, services, admin_account) -> None:
    await add_report(services, admin_account, "pc-1")
    await add_report(services, admin_account, "pc-2")
    await admin.open(page_of("pc-1"))
    admin.find(marker="delete-machine").click()
    admin.find(marker="confirm-delete").click()
    await admin.should_see("Machine removed.", retries=50)
    with pytest.raises(NotFound):
        services.fleet.machine(org_id=admin_account.org_id, machine_id="pc-1")
    assert services.fleet.history(org_id=admin_account.org_id, machine_id="pc-2", hours=1)  # the other stays


async def test_a_viewer_cannot_remove_machines(user: User, services) -> None:
    viewer = make_account(services, "viewer")
    await add_report(services, viewer, "pc-1")
    await sign_in(user, viewer)
    await user.should_see(marker="fleet-table", retries=50)
    await user.open(page_of("pc-1"))
    await user.should_see(marker="report-card")
    await user.should_not_see(marker="delete-machine")


async def test_an_admin_demoted_meanwhile_is_refused_and_nothing_is_removed(
    admin: User, services, admin_account
) -> None:
    await add_report(services, admin_account, "pc-1")
    await admin.open(page_of("pc-1"))
    other_admin = make_account(services, "admin", org_name=admin_account.org_name)
    users = {u.email: u.id for u in services.accounts.list_users(org_id=admin_account.org_id)}
    assert other_admin.email in users
    services.accounts.set_role(org_id=admin_account.org_id, user_id=users[admin_account.email], role="viewer")
    admin.find(marker="delete-machine").click()
    admin.find(marker="confirm-delete").click()
    await admin.should_see("Only an admin can remove machines.", retries=50)
    assert services.fleet.machine(org_id=admin_account.org_id, machine_id="pc-1").machine_id == "pc-1"


async def test_messages_and_commands_follow_the_feature_flags(admin: User, services, admin_account) -> None:
    await add_report(services, admin_account, "pc-1")
    await admin.open(page_of("pc-1"))
    await admin.should_not_see(marker="feature-messaging")
    await admin.should_not_see(marker="feature-commands")
    services.settings.feature_messaging = True  # the object /api/config serves from
    await admin.open(page_of("pc-1"))
    await admin.should_see(marker="feature-messaging")
    await admin.should_see("Messages to this machine")
    await admin.should_not_see(marker="feature-commands")
    services.settings.feature_commands = True
    await admin.open(page_of("pc-1"))
    await admin.should_see("Commands to this machine")


async def test_the_page_follows_the_machine(admin: User, services, admin_account) -> None:
    await add_report(services, admin_account, "pc-1", cpu=10)
    await admin.open(page_of("pc-1"))
    assert label_text(admin, "report-cpu_percent") == "10%"
    await add_report(services, admin_account, "pc-1", cpu=80)
    timer = next(iter(admin.find(ui.timer).elements))
    with admin:
        await timer.callback()
    assert label_text(admin, "report-cpu_percent") == "80%"
    services.fleet.delete_machine(org_id=admin_account.org_id, machine_id="pc-1")
    with admin:
        await timer.callback()
    await admin.should_see(marker="machine-missing")


async def test_a_sensor_that_could_not_be_read_is_unknown_on_the_machine_page(
    admin: User, services, admin_account
) -> None:
    await add_report(services, admin_account, "no-sensors", cpu=None, ram=None, disk=None)
    await admin.open(page_of("no-sensors"))
    assert label_text(admin, "report-cpu_percent") == "unknown"
    assert label_text(admin, "health-score") == "–"
    assert admin.find(marker="health-status").elements.pop().text == "unknown"
    reasons = [label.text for label in admin.find(marker="health-reason").elements]
    assert "Disk unknown (could not be read)" in reasons
