"""What the fleet page is showing (filters, sort, page) and how a machine becomes a table row.

The view is kept in the user's storage, so the timer's refresh, a reload and a visit to a machine
and back all keep the user's place. Everything here is plain data: the page does the drawing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from datetime import tzinfo
from urllib.parse import quote

from admin.services.fleet import SORT_KEYS as SERVICE_SORT_KEYS
from admin.services.fleet import FleetFilter, MachineAlerts
from admin.services.public import MachineOut
from admin.ui.components.format import exact_time, relative_time, sensor

ALL = "all"
STATUS_OPTIONS = {ALL: "Any status", "online": "Online", "offline": "Offline"}
HEALTH_OPTIONS = {ALL: "Any health", "ok": "OK", "warning": "Warning", "critical": "Critical"}
ROWS_PER_PAGE_OPTIONS = (10, 25, 50, 100)
MAX_QUERY_LENGTH = 200
STORAGE_KEY = "fleet_view"

# Table column name -> the service's sort key.
SORT_KEYS = {
    "machine_id": "machine_id",
    "hostname": "hostname",
    "os": "os",
    "health_score": "health_score",
    "cpu_percent": "cpu_percent",
    "ram_percent": "ram_percent",
    "disk_percent": "disk_percent",
    "last_seen": "last_seen",
}
assert set(SORT_KEYS.values()) <= SERVICE_SORT_KEYS, "every sortable column needs a service sort key"


@dataclass(frozen=True)
class FleetView:
    q: str = ""
    status: str = ALL
    os: str = ALL
    health: str = ALL
    page: int = 1
    rows_per_page: int = 25
    sort_by: str = "machine_id"
    descending: bool = False

    # -- to and from what the browser and the storage send -------------------------------------
    @classmethod
    def from_storage(cls, stored: object) -> FleetView:
        """A stored view, each bad or missing value replaced by its default (old sessions, tampering)."""
        if not isinstance(stored, dict):
            return cls()
        known = {f.name for f in fields(cls)}
        view = cls()
        for name, value in stored.items():
            if name in known:
                view = view.with_value(name, value)
        return view

    def with_value(self, name: str, value: object) -> FleetView:
        """This view with one field changed when the value is valid, unchanged otherwise."""
        if name == "q" and isinstance(value, str):
            return replace(self, q=value.strip()[:MAX_QUERY_LENGTH])
        if name == "q" and value is None:
            return replace(self, q="")
        if name == "status" and value in STATUS_OPTIONS:
            return replace(self, status=value)
        if name == "health" and value in HEALTH_OPTIONS:
            return replace(self, health=value)
        if name == "os" and isinstance(value, str) and value:
            return replace(self, os=value[:256])
        if name == "page" and isinstance(value, int) and not isinstance(value, bool) and value >= 1:
            return replace(self, page=value)
        if name == "rows_per_page" and value in ROWS_PER_PAGE_OPTIONS:
            return replace(self, rows_per_page=value)
        if name == "sort_by" and value in SORT_KEYS:
            return replace(self, sort_by=value)
        if name == "descending" and isinstance(value, bool):
            return replace(self, descending=value)
        return self

    def with_pagination(self, pagination: object) -> FleetView:
        """Apply Quasar's `request` event: page, rows per page and sort (sortBy null: by machine id)."""
        if not isinstance(pagination, dict):
            return self
        view = self.with_value("page", pagination.get("page"))
        view = view.with_value("rows_per_page", pagination.get("rowsPerPage"))
        if not pagination.get("sortBy"):  # Quasar's third click on a header: back to the default order
            return replace(view, sort_by="machine_id", descending=False)
        view = view.with_value("sort_by", pagination["sortBy"])
        return view.with_value("descending", pagination.get("descending"))

    def as_storage(self) -> dict:
        return asdict(self)

    def pagination(self, count: int) -> dict:
        return {
            "page": self.page,
            "rowsPerPage": self.rows_per_page,
            "sortBy": self.sort_by,
            "descending": self.descending,
            "rowsNumber": count,
        }

    # -- to what the service takes ----------------------------------------------------------------
    def fleet_filter(self) -> FleetFilter:
        return FleetFilter(
            os=None if self.os == ALL else self.os,
            status=None if self.status == ALL else self.status,
            q=self.q or None,
            health=None if self.health == ALL else self.health,
        )

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.rows_per_page

    def last_page(self, count: int) -> int:
        return max(1, -(-count // self.rows_per_page))

    @property
    def is_filtered(self) -> bool:
        return bool(self.q) or self.status != ALL or self.os != ALL or self.health != ALL


def machine_href(machine_id: str) -> str:
    """The machine page's address; the id is percent-encoded, so any id makes a local link."""
    return "/machine?id=" + quote(machine_id, safe="")


def os_text(system: dict, os_name: str | None) -> str:
    name = os_name or system.get("os") or ""
    version = system.get("os_version") or ""
    return f"{name} {version}".strip() if isinstance(version, str) else str(name)


def shown_status(machine: MachineOut) -> str:
    """'away' for a machine offline by its own word (its agent said goodbye), else its status."""
    return "away" if machine.away is not None and machine.status == "offline" else machine.status


def to_row(machine: MachineOut, *, now: float, tz: tzinfo, alerts: MachineAlerts | None = None) -> dict:
    """One table row. Values are plain strings and numbers: the table shows them as text."""
    return {
        "alerts_firing": alerts.firing if alerts else 0,
        "alerts_worst": alerts.worst if alerts else "",
        "alerts_text": f"{alerts.firing} {alerts.worst}" if alerts else "",
        "machine_id": machine.machine_id,
        "href": machine_href(machine.machine_id),
        "hostname": machine.hostname or "",
        "status": shown_status(machine),
        "health_score": machine.health_score,
        "health_text": "–" if machine.health_score is None else f"{machine.health_score:.0f}",
        "health_status": machine.health_status or "unknown",
        "cpu_percent": sensor(machine.report, "cpu_percent"),
        "ram_percent": sensor(machine.report, "ram_percent"),
        "disk_percent": sensor(machine.report, "disk_percent"),
        "os": os_text(machine.system, machine.os),
        "last_seen": relative_time(machine.last_seen, now),
        "last_seen_exact": exact_time(machine.last_seen, tz),
    }
