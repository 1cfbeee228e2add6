"""The tray menu's entries, as every tray backend renders them (desktop_agent.sni, pystray)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Entry:
    """One menu entry: a command (action), a submenu (children), a line to read (neither), or a
    separator (no label). Ids are stable per command (dbusmenu's item ids)."""

    id: int
    label: str = ""
    action: Callable[[], object] | None = None
    enabled: bool = True
    children: tuple[Entry, ...] = ()

    @property
    def separator(self) -> bool:
        return not self.label


def walk(entries: Sequence[Entry]) -> Iterator[Entry]:
    """Every entry, submenus' included."""
    for entry in entries:
        yield entry
        yield from walk(entry.children)


def shape(entries: Sequence[Entry]) -> list[tuple[int, str, bool, int]]:
    """What a person sees of a menu (its actions are ours alone; callables rarely compare equal)."""
    return [(e.id, e.label, e.enabled, len(e.children)) for e in walk(entries)]
