"""The page chrome every signed-in page shares: header, navigation, dark mode, sign-out."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager

from nicegui import app, ui

from admin.ui import auth

BRAND = "DashFleet"
# Quasar's brand colour, also used by the charts so both modes read the same.
PRIMARY = "#1565c0"
DARK_KEY = "dark"  # app.storage.user: True, False or None (follow the system)

# The one place the UI's status colours are set (Quasar colour names): the table's badges, the
# summary cards and the machine page all read these. Unknown (no report, or a sensor the agent could
# not read) is grey, never a healthy green.
UNKNOWN_COLOUR = "grey-7"
HEALTH_COLOURS = {"ok": "positive", "warning": "orange-9", "critical": "negative"}
CONNECTION_COLOURS = {"online": "positive", "offline": UNKNOWN_COLOUR, "away": "info"}  # away: said goodbye


def health_colour(status: str | None) -> str:
    return HEALTH_COLOURS.get(status or "", UNKNOWN_COLOUR)


def connection_colour(status: str | None) -> str:
    return CONNECTION_COLOURS.get(status or "", UNKNOWN_COLOUR)


# Pages of features that may be off add themselves to the navigation with when to show them.
NAV_LINKS: dict[str, tuple[str, str, str, Callable[[], bool]]] = {}


def add_nav_link(label: str, path: str, marker: str, shown: Callable[[], bool]) -> None:
    NAV_LINKS[path] = (label, path, marker, shown)


# Widgets of other features in the header (the alerts bell), drawn for the signed-in user. A draw
# may return a function to call once the page's body is built (its timers start then, so they never
# compete with the page's own loads).
HEADER_ITEMS: dict[str, Callable[[auth.SignedInUser], Callable[[], None] | None]] = {}


def add_header_item(name: str, draw: Callable[[auth.SignedInUser], Callable[[], None] | None]) -> None:
    HEADER_ITEMS[name] = draw


def apply_colors() -> None:
    ui.colors(primary=PRIMARY)


def dark_mode() -> ui.dark_mode:
    """The user's choice, kept in their storage so every page and tab agrees."""
    return ui.dark_mode().bind_value(app.storage.user, DARK_KEY)


def _toggle_dark(mode: ui.dark_mode) -> None:
    # From "follow the system" the first click goes dark; after that it flips.
    mode.value = not bool(mode.value)


async def _sign_out() -> None:
    await auth.sign_out()


@contextmanager
def frame(user: auth.SignedInUser, title: str) -> Iterator[ui.column]:
    """Header and navigation around a page's content; yields the content column."""
    apply_colors()
    mode = dark_mode()
    ui.page_title(f"{title} · {BRAND}")
    with ui.header(elevated=True).classes("items-center gap-1 px-2 sm:px-4 py-1 bg-primary"):
        ui.link(BRAND, "/").classes("text-lg font-bold text-white no-underline mr-2").mark("brand")
        ui.link("Fleet", "/").classes("text-white no-underline px-2").mark("nav-fleet")
        for label, path, marker, shown in NAV_LINKS.values():
            if shown():
                ui.link(label, path).classes("text-white no-underline px-2").mark(marker)
        if user.is_admin:
            ui.link("Settings", "/settings").classes("text-white no-underline px-2").mark("nav-settings")
            ui.link("Audit", "/audit").classes("text-white no-underline px-2").mark("nav-audit")
        ui.space()
        with ui.column().classes("gap-0 items-end max-sm:hidden"):
            ui.label(user.email).classes("text-sm text-white").mark("user-email")
            ui.label(f"{user.org_name} · {user.role}").classes("text-xs text-white opacity-80").mark("user-org")
        after_body = [start for draw in HEADER_ITEMS.values() if (start := draw(user)) is not None]
        ui.button(icon="dark_mode", on_click=lambda: _toggle_dark(mode)).props(
            'flat round dense color=white aria-label="Toggle dark mode"'
        ).tooltip("Dark mode").mark("dark-toggle")
        ui.button(icon="account_circle", on_click=lambda: ui.navigate.to("/account")).props(
            'flat round dense color=white aria-label="Your account"'
        ).tooltip("Your account").mark("nav-account")
        ui.button(icon="logout", on_click=_sign_out).props(
            'flat round dense color=white aria-label="Sign out"'
        ).tooltip("Sign out").mark("sign-out")
    with ui.column().classes("w-full max-w-screen-xl mx-auto p-2 sm:p-4 gap-4") as content:
        yield content
    for start in after_body:
        start()


def section(title: str) -> ui.card:
    """A titled card, the unit every page is built of; use it with `with`."""
    card = ui.card().classes("w-full gap-1").props("flat bordered")
    with card:
        ui.label(title).classes("text-lg font-bold mb-1")
    return card


def confirm(
    question: str, verb: str, action: Callable[[], Awaitable[None]], *, detail: str = "", marker: str = "confirm"
) -> None:
    """Ask before a change that cannot be undone; the dialog is gone once answered either way."""

    def discard() -> None:
        # The action may have refreshed the part of the page the dialog was made in, deleting it.
        if not dialog.is_deleted:
            dialog.delete()

    with ui.dialog() as dialog, ui.card().classes("max-w-md"):
        ui.label(question)
        if detail:
            ui.label(detail).classes("font-mono break-all")
        with ui.row().classes("w-full justify-end"):
            ui.button("Cancel", on_click=discard).props("flat").mark("cancel")

            async def go() -> None:
                # The action runs while the dialog still exists (closed): it checks the session in
                # the page's context, which a deleted dialog's slot would no longer have.
                dialog.close()
                try:
                    await action()
                finally:
                    discard()

            ui.button(verb, color="negative", on_click=go).mark(marker)
    dialog.on("hide", discard)  # Escape or a click outside
    dialog.open()


def notice(message: str, *, icon: str = "info", marker: str | None = None) -> None:
    """A plain-text card for 'not found', 'admins only' and the like."""
    with ui.card().classes("w-full"), ui.row().classes("items-center gap-2 no-wrap"):
        ui.icon(icon, size="sm").classes("text-grey-7")
        label = ui.label(message)
        if marker:
            label.mark(marker)
