"""The fleet page: what it lists and counts, filters, sort and paging on the server, the refresh."""

from __future__ import annotations

import threading
import time

from nicegui import ui
from nicegui.testing import User
from sqlalchemy import event

from admin.services.alerts import RuleIn
from admin.ui.components.fleet_view import FleetView
from admin.ui.components.format import duration
from admin.ui.pages.fleet import load_snapshot
from tests.helpers.ui import (
    Account,
    add_report,
    label_text,
    make_account,
    shown_machine_ids,
    shows_machines,
    table_rows,
)

XSS_ID = "<img src=x onerror=alert(1)>"


def counts(user: User) -> dict[str, str]:
    return {key: label_text(user, f"count-{key}") for key in ("machines", "online", "offline", "warning", "critical")}


def request_page(user: User, **pagination) -> None:
    """What Quasar's table sends when the user sorts or turns a page."""
    user.find(marker="fleet-table").trigger("request", {"pagination": pagination})


async def refresh_now(user: User) -> None:
    """Fire the page's refresh timer once, as the browser's clock would."""
    timer = next(iter(user.find(ui.timer).elements))
    with user:
        await timer.callback()


async def arrange(services, account: Account) -> None:
    now = time.time()
    await add_report(services, account, "pc-ok", cpu=10, ram=30, disk=40)
    await add_report(services, account, "pc-warn", cpu=88, ram=30, disk=40)  # CPU over its warning line
    await add_report(services, account, "pc-crit", cpu=97, ram=30, disk=40)
    await add_report(services, account, "mac-1", system={"os": "Darwin", "os_version": "23.4.0", "hostname": "studio"})
    await add_report(services, account, "pc-old", now=now - 1000)  # offline: silent for over 300 s
    await services.fleet.record_ping(org_id=account.org_id, machine_id="ping-only", hardware_id=None, now=now)


async def test_lists_and_counts_only_the_organisations_machines(admin: User, services, admin_account) -> None:
    await arrange(services, admin_account)
    stranger = make_account(services)
    await add_report(services, stranger, "their-pc")
    await add_report(services, stranger, "pc-ok")  # the same id in another organisation
    await admin.open("/")
    assert shown_machine_ids(admin) == ["mac-1", "pc-crit", "pc-ok", "pc-old", "pc-warn", "ping-only"]
    assert counts(admin) == {"machines": "6", "online": "5", "offline": "1", "warning": "1", "critical": "1"}
    rows = {row["machine_id"]: row for row in table_rows(admin)}
    assert rows["pc-crit"]["health_status"] == "critical" and rows["pc-crit"]["cpu_percent"] == "97%"
    assert rows["mac-1"]["os"] == "Darwin 23.4.0" and rows["mac-1"]["hostname"] == "studio"
    assert rows["pc-old"]["status"] == "offline" and rows["pc-old"]["last_seen"] == "16 min ago"
    assert rows["ping-only"]["health_text"] == "–" and rows["ping-only"]["cpu_percent"] == "–"
    await admin.should_not_see("their-pc")


async def test_last_seen_is_relative_with_the_exact_local_time_for_hovering(
    admin: User, services, admin_account
) -> None:
    seen = 1_767_225_600.0 + 3600 * 5  # 2026-01-01 05:00 UTC = 06:00 in Paris, the browser's zone
    await add_report(services, admin_account, "pc-1", now=seen)
    services.settings.fleet_ttl_seconds = 10**9  # keep a machine that old in the fleet
    await admin.open("/")
    row = table_rows(admin)[0]
    assert row["last_seen_exact"] == "2026-01-01 06:00:00 CET"
    assert row["last_seen"].endswith(" d ago")


async def test_a_machine_id_is_kept_as_text(admin: User, services, admin_account) -> None:
    await add_report(services, admin_account, XSS_ID)
    await add_report(services, admin_account, 'a/b?c=d&e="f"')
    await admin.open("/")
    rows = {row["machine_id"]: row for row in table_rows(admin)}
    assert set(rows) == {XSS_ID, 'a/b?c=d&e="f"'}
    assert rows[XSS_ID]["href"] == "/machine?id=%3Cimg%20src%3Dx%20onerror%3Dalert%281%29%3E"
    assert rows['a/b?c=d&e="f"']["href"] == "/machine?id=a%2Fb%3Fc%3Dd%26e%3D%22f%22"
    await admin.should_not_see(ui.html)
    await admin.should_not_see(ui.markdown)


async def test_search_and_filters_narrow_the_table_and_the_empty_state_says_why(
    admin: User, services, admin_account
) -> None:
    await arrange(services, admin_account)
    await admin.open("/")
    admin.find(marker="search").type("PC-")  # any case, id or hostname
    await shows_machines(admin, ["pc-crit", "pc-ok", "pc-old", "pc-warn"])
    admin.find(marker="filter-status").elements.pop().set_value("offline")
    await shows_machines(admin, ["pc-old"])
    admin.find(marker="filter-status").elements.pop().set_value("all")
    admin.find(marker="search").clear()
    admin.find(marker="filter-os").elements.pop().set_value("Darwin")
    await shows_machines(admin, ["mac-1"])
    admin.find(marker="filter-health").elements.pop().set_value("critical")
    await admin.should_see("No machine matches these filters.")
    assert shown_machine_ids(admin) == []
    assert counts(admin)["machines"] == "6"  # the summary always counts the whole fleet


async def test_summary_cards_filter_the_table(admin: User, services, admin_account) -> None:
    await arrange(services, admin_account)
    await admin.open("/")
    admin.find(marker="summary-warning").trigger("click")
    await shows_machines(admin, ["pc-warn"])
    assert admin.find(marker="filter-health").elements.pop().value == "warning"
    admin.find(marker="summary-offline").trigger("click")
    await shows_machines(admin, [])  # offline and warning: none
    admin.find(marker="summary-machines").trigger("click")  # clears status and health
    await shows_machines(admin, ["mac-1", "pc-crit", "pc-ok", "pc-old", "pc-warn", "ping-only"])


async def test_sort_and_pages_come_from_the_server(admin: User, services, admin_account) -> None:
    for n in range(30):
        await add_report(services, admin_account, f"m-{n:02d}", cpu=float(n))
    await admin.open("/")
    table = admin.find(marker="fleet-table").elements.pop()
    assert len(table.rows) == 25 and table.pagination["rowsNumber"] == 30  # one page in the browser
    request_page(admin, page=2, rowsPerPage=10, sortBy="cpu_percent", descending=True)
    await shows_machines(admin, [f"m-{n:02d}" for n in range(19, 9, -1)])
    assert table.pagination == {
        "page": 2,
        "rowsPerPage": 10,
        "sortBy": "cpu_percent",
        "descending": True,
        "rowsNumber": 30,
    }
    request_page(admin, page=99, rowsPerPage=10, sortBy="machine_id", descending=False)  # past the end
    await shows_machines(admin, [f"m-{n:02d}" for n in range(20, 30)])
    assert table.pagination["page"] == 3


async def test_a_tampered_request_changes_nothing_it_should_not(admin: User, services, admin_account) -> None:
    for n in range(3):
        await add_report(services, admin_account, f"m-{n}")
    await admin.open("/")
    request_page(admin, page=-1, rowsPerPage=7, sortBy="password_hash; DROP TABLE machine", descending="yes")
    await refresh_now(admin)  # newer than the request's load: whatever that did, this shows the result
    table = admin.find(marker="fleet-table").elements.pop()
    assert table.pagination == {
        "page": 1,
        "rowsPerPage": 25,
        "sortBy": "machine_id",
        "descending": False,
        "rowsNumber": 3,
    }
    assert shown_machine_ids(admin) == ["m-0", "m-1", "m-2"]


async def test_the_refresh_shows_new_reports_and_keeps_the_users_view(admin: User, services, admin_account) -> None:
    for n in range(12):
        await add_report(services, admin_account, f"m-{n:02d}", cpu=float(n))
    await admin.open("/")
    admin.find(marker="search").type("m-")
    request_page(admin, page=2, rowsPerPage=10, sortBy="cpu_percent", descending=False)
    await shows_machines(admin, ["m-10", "m-11"])
    before = label_text(admin, "last-refreshed")
    await add_report(services, admin_account, "m-new", cpu=99.0)
    await add_report(services, admin_account, "other", cpu=100.0)  # not matching the search
    await refresh_now(admin)
    assert shown_machine_ids(admin) == ["m-10", "m-11", "m-new"]
    table = admin.find(marker="fleet-table").elements.pop()
    assert table.pagination == {
        "page": 2,
        "rowsPerPage": 10,
        "sortBy": "cpu_percent",
        "descending": False,
        "rowsNumber": 13,
    }
    assert admin.find(marker="search").elements.pop().value == "m-"
    assert counts(admin)["machines"] == "14"
    assert label_text(admin, "last-refreshed").startswith("Updated ") and before.startswith("Updated ")


async def test_the_view_survives_a_reload(admin: User, services, admin_account) -> None:
    await arrange(services, admin_account)
    await admin.open("/")
    admin.find(marker="filter-status").elements.pop().set_value("offline")
    await shows_machines(admin, ["pc-old"])
    await admin.open("/")
    assert admin.find(marker="filter-status").elements.pop().value == "offline"
    assert shown_machine_ids(admin) == ["pc-old"]


async def test_machines_beyond_the_ttl_leave_the_page_but_the_api_still_names_them(
    admin: User, services, admin_account
) -> None:
    ttl = services.settings.fleet_ttl_seconds
    await add_report(services, admin_account, "gone", now=time.time() - ttl - 10)
    await add_report(services, admin_account, "here")
    await admin.open("/")
    assert shown_machine_ids(admin) == ["here"]
    assert counts(admin)["machines"] == "1"
    # The page did not take the expiry notice: the API's next listing still reports it, once.
    listing = services.fleet.list_fleet(org_id=admin_account.org_id)
    assert listing.expired == ["gone"]


async def test_a_new_organisation_sees_how_machines_arrive(admin: User) -> None:
    await admin.should_see("No machines yet")
    assert counts(admin) == {"machines": "0", "online": "0", "offline": "0", "warning": "0", "critical": "0"}


async def test_the_page_states_the_settings_it_runs_with(admin: User, services) -> None:
    config = services.settings.public_config()
    text = label_text(admin, "fleet-settings")
    assert f"Refreshes every {duration(config['REFRESH_INTERVAL_MS'] / 1000)}" in text
    assert f"offline after {duration(config['OFFLINE_AFTER_SECONDS'])}" in text
    assert f"leaves the fleet after {duration(config['FLEET_TTL_SECONDS'])}" in text
    timer = next(iter(admin.find(ui.timer).elements))
    assert timer.interval == config["REFRESH_INTERVAL_MS"] / 1000


async def test_a_sensor_that_could_not_be_read_shows_as_unknown(admin: User, services, admin_account) -> None:
    await add_report(services, admin_account, "null-disk", cpu=30.0, ram=20.0, disk=None)
    # An earlier agent's way of saying the same: 0 and the key named in `unavailable`.
    await add_report(services, admin_account, "old-agent", cpu=30.0, ram=20.0, disk=0.0, unavailable=["disk_percent"])
    await admin.open("/")
    rows = {row["machine_id"]: row for row in table_rows(admin)}
    for machine_id in ("null-disk", "old-agent"):
        assert rows[machine_id]["disk_percent"] == "unknown", machine_id
        assert rows[machine_id]["cpu_percent"] == "30%"
    assert rows["null-disk"]["health_text"] == rows["old-agent"]["health_text"]


async def test_the_table_shows_what_fires_on_each_machine_from_the_pages_own_query(
    admin: User, services, admin_account
) -> None:
    org_id = admin_account.org_id
    services.alerts.create_rule(org_id=org_id, spec=RuleIn(name=XSS_ID, kind="cpu", threshold=50, severity="warning"))
    services.alerts.create_rule(org_id=org_id, spec=RuleIn(name="RAM", kind="ram", threshold=50, severity="critical"))
    stranger = make_account(services)
    services.alerts.create_rule(org_id=stranger.org_id, spec=RuleIn(name="theirs", kind="cpu", threshold=1))
    await add_report(services, admin_account, "calm", cpu=10, ram=10)
    await add_report(services, admin_account, "hot", cpu=90, ram=10)
    await add_report(services, admin_account, XSS_ID, cpu=90, ram=90)
    await add_report(services, stranger, "calm", cpu=99)  # the same id, firing in another organisation
    await admin.open("/")
    await shows_machines(admin, ["<img src=x onerror=alert(1)>", "calm", "hot"])
    rows = {row["machine_id"]: row for row in table_rows(admin)}
    assert (rows["calm"]["alerts_firing"], rows["calm"]["alerts_text"]) == (0, "")
    assert (rows["hot"]["alerts_firing"], rows["hot"]["alerts_text"]) == (1, "1 warning")
    assert (rows[XSS_ID]["alerts_firing"], rows[XSS_ID]["alerts_text"]) == (2, "2 critical")
    # The badge is a Vue binding of the row's plain text (never HTML), and no rule name is in the row.
    assert "v-html" not in fleet_table_slot(admin, "body-cell-alerts")
    assert all(XSS_ID not in str(value) for key, value in rows[XSS_ID].items() if key not in ("machine_id", "href"))

    # One query for the page whatever it lists: not one more per machine.
    view = FleetView()
    few = statements_of(services, lambda: load_snapshot(services, org_id, view))
    for n in range(15):
        await add_report(services, admin_account, f"more-{n:02d}", cpu=95, ram=95)
    many = statements_of(services, lambda: load_snapshot(services, org_id, view))
    assert len(load_snapshot(services, org_id, view).alerts) == 17
    assert many == few

    await add_report(services, admin_account, "hot", cpu=10, ram=10)  # resolved: the badge goes
    await refresh_now(admin)
    rows = {row["machine_id"]: row for row in table_rows(admin)}
    assert (rows["hot"]["alerts_firing"], rows["hot"]["alerts_text"]) == (0, "")


def fleet_table_slot(user: User, name: str) -> str:
    table = user.find(marker="fleet-table").elements.pop()
    return str(table.slots[name].template)


def statements_of(services, action) -> int:
    """How many SQL statements `action` runs (on this thread: the page's refresh timer and the
    server's background loops query the same engine meanwhile)."""
    seen: list[str] = []
    here = threading.get_ident()

    def count(_conn, _cursor, statement, *_args) -> None:
        if threading.get_ident() == here:
            seen.append(statement)

    event.listen(services.engine, "before_cursor_execute", count)
    try:
        action()
    finally:
        event.remove(services.engine, "before_cursor_execute", count)
    return len(seen)
