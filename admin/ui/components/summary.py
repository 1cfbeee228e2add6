"""The fleet's summary counts as cards; a click on a card filters the table to it."""

from __future__ import annotations

from collections.abc import Callable

from nicegui import ui

from admin.ui import theme

# (count key, label, the filter a click sets: field and value; "machines" clears both)
CARDS = (
    ("machines", "Machines", None, None),
    ("online", "Online", "status", "online"),
    ("offline", "Offline", "status", "offline"),
    ("warning", "Warning", "health", "warning"),
    ("critical", "Critical", "health", "critical"),
)
_COLOURS = {
    "online": f"text-{theme.connection_colour('online')}",
    "offline": f"text-{theme.connection_colour('offline')}",
    "warning": f"text-{theme.health_colour('warning')}",
    "critical": f"text-{theme.health_colour('critical')}",
}


class SummaryCards:
    def __init__(self, on_pick: Callable[[str | None, str | None], object]) -> None:
        self._numbers: dict[str, ui.label] = {}
        with ui.element("div").classes("grid grid-cols-3 sm:grid-cols-5 gap-2 w-full"):
            for key, label, field, value in CARDS:
                card = ui.card().classes("p-2 sm:p-3 cursor-pointer items-start gap-0").props("flat bordered")
                card.on("click", lambda _, f=field, v=value: on_pick(f, v))
                card.mark(f"summary-{key}")
                with card:
                    ui.label(label).classes("text-xs uppercase tracking-wide text-grey-7")
                    self._numbers[key] = ui.label("–").classes(f"text-2xl font-bold {_COLOURS.get(key, '')}")
                    self._numbers[key].mark(f"count-{key}")

    def show(self, counts: dict[str, int]) -> None:
        for key, number in self._numbers.items():
            number.text = f"{counts.get(key, 0):,}"
