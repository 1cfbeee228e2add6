"""The audit log page (/audit): admins read their organisation's entries, filter and page them,
export CSV; viewers and other organisations see nothing of it."""

from __future__ import annotations

from nicegui import ui
from nicegui.testing import User

from admin.services.audit import Actor
from tests.helpers.ui import make_account, sign_in


def table_rows(user: User) -> list[dict]:
    return user.find(marker="audit-table").elements.pop().rows


async def test_an_admin_sees_who_did_what_newest_first_and_filters(admin: User, services, admin_account) -> None:
    for n in range(3):
        services.accounts.create_key(
            org_id=admin_account.org_id, scopes=["read"], actor=Actor.user(f"x{n}@e.com", "192.0.2.7")
        )
    await admin.open("/audit")
    await admin.should_see(marker="audit-table")
    rows = table_rows(admin)
    assert [r["actor"] for r in rows[:3]] == ["user x2@e.com", "user x1@e.com", "user x0@e.com"]
    assert rows[0]["action"] == "key.create" and rows[0]["address"] == "192.0.2.7" and "read" in rows[0]["detail"]
    admin.find(marker="f-actor").type("x1@")
    admin.find(marker="audit-filter").click()
    await admin.should_see("1-1 of 1")
    assert [r["actor"] for r in table_rows(admin)] == ["user x1@e.com"]


async def test_markup_in_an_entry_is_shown_as_text(admin: User, services, admin_account) -> None:
    services.audit.record(org_id=admin_account.org_id, actor="<b>bold</b>", action="test.markup", target="<img src=x>")
    await admin.open("/audit")
    await admin.should_see(marker="audit-table")
    row = table_rows(admin)[0]
    assert row["actor"] == "<b>bold</b>" and row["target"] == "<img src=x>"  # cells are text, not HTML
    await admin.should_not_see(kind=ui.html)


async def test_pages_of_fifty(admin: User, services, admin_account) -> None:
    for n in range(55):
        services.audit.record(org_id=admin_account.org_id, actor="cli test", action="test.page", target=f"t{n}")
    await admin.open("/audit")
    await admin.should_see(marker="audit-table")
    total = services.audit.entries(org_id=admin_account.org_id)["count"]
    await admin.should_see(f"1-50 of {total}")
    admin.find(marker="next").click()
    await admin.should_see(f"51-{total} of {total}")


async def test_export_downloads_csv(admin: User, services, admin_account) -> None:
    services.audit.record(org_id=admin_account.org_id, actor="=cmd|' /C calc'!A0", action="test.csv", target="x")
    await admin.open("/audit")
    await admin.should_see(marker="audit-table")
    admin.find(marker="audit-export").click()
    data = (await admin.download.next(timeout=10)).content.decode()
    assert data.startswith("at (UTC),actor,address,action,target,detail")
    assert "'=cmd" in data  # a formula is defused for spreadsheets


async def test_a_viewer_gets_no_audit_log(user: User, services) -> None:
    viewer = make_account(services, "viewer")
    await sign_in(user, viewer)
    await user.should_see(marker="fleet-table", retries=50)
    await user.open("/audit")
    await user.should_see(marker="admins-only")
    await user.should_not_see(marker="audit-table")
    await user.should_not_see(marker="nav-audit")


async def test_another_organisations_entries_are_not_shown(admin: User, services) -> None:
    other = make_account(services, "admin")
    services.audit.record(org_id=other.org_id, actor="cli other", action="test.secret", target="their-secret")
    await admin.open("/audit")
    await admin.should_see(marker="audit-table")
    assert all(r["target"] != "their-secret" for r in table_rows(admin))
