"""The fleet table: Quasar's QTable in server-side mode (the browser only ever holds one page).

Cells are drawn by Vue templates that interpolate values with {{ }} or bind them to attributes,
so a machine id like `<img src=x onerror=alert(1)>` is shown as text, never parsed as HTML.
"""

from __future__ import annotations

from nicegui import ui

from admin.ui import theme
from admin.ui.components.alert_list import SEVERITY_COLOURS
from admin.ui.components.fleet_view import ROWS_PER_PAGE_OPTIONS


def _js_map(colours: dict[str, str]) -> str:
    """A JS object literal in single quotes (it sits in a double-quoted Vue attribute)."""
    return "{" + ", ".join(f"'{key}': '{value}'" for key, value in colours.items()) + "}"


_CONNECTION, _HEALTH, _UNKNOWN = _js_map(theme.CONNECTION_COLOURS), _js_map(theme.HEALTH_COLOURS), theme.UNKNOWN_COLOUR
_SEVERITY = _js_map(SEVERITY_COLOURS)

# Phones (Quasar's xs, below 600 px) see machine, status, health and last seen; wider screens more.
_WIDER_THAN_PHONE = {"classes": "gt-xs", "headerClasses": "gt-xs"}
_WIDER_THAN_TABLET = {"classes": "gt-sm", "headerClasses": "gt-sm"}

COLUMNS = [
    {"name": "machine_id", "label": "Machine", "field": "machine_id", "sortable": True, "align": "left"},
    {"name": "status", "label": "Status", "field": "status", "align": "left"},
    {"name": "alerts", "label": "Alerts", "field": "alerts_text", "align": "left"},
    {"name": "health_score", "label": "Health", "field": "health_text", "sortable": True, "align": "left"},
    {
        "name": "cpu_percent",
        "label": "CPU",
        "field": "cpu_percent",
        "sortable": True,
        "align": "right",
        **_WIDER_THAN_PHONE,
    },
    {
        "name": "ram_percent",
        "label": "RAM",
        "field": "ram_percent",
        "sortable": True,
        "align": "right",
        **_WIDER_THAN_PHONE,
    },
    {
        "name": "disk_percent",
        "label": "Disk",
        "field": "disk_percent",
        "sortable": True,
        "align": "right",
        **_WIDER_THAN_PHONE,
    },
    {"name": "os", "label": "OS", "field": "os", "sortable": True, "align": "left", **_WIDER_THAN_TABLET},
    {
        "name": "hostname",
        "label": "Hostname",
        "field": "hostname",
        "sortable": True,
        "align": "left",
        **_WIDER_THAN_TABLET,
    },
    {"name": "last_seen", "label": "Last seen", "field": "last_seen", "sortable": True, "align": "left"},
]

_MACHINE_CELL = """
<q-td :props="props" class="whitespace-normal break-all" style="min-width: 7rem; max-width: 22rem">
  <a :href="props.row.href" class="text-primary" data-testid="machine-link">{{ props.value }}</a>
</q-td>
"""
_STATUS_CELL = f"""
<q-td :props="props">
  <q-badge outline :color="({_CONNECTION})[props.value] || '{_UNKNOWN}'" :label="props.value" />
</q-td>
"""
_HEALTH_CELL = f"""
<q-td :props="props">
  <q-badge :color="({_HEALTH})[props.row.health_status] || '{_UNKNOWN}'"
           :label="props.value" :title="props.row.health_status" />
</q-td>
"""
# Nothing when nothing fires; else "2 critical": how many fire now and the worst severity.
_ALERTS_CELL = f"""
<q-td :props="props">
  <q-badge v-if="props.row.alerts_firing" :color="({_SEVERITY})[props.row.alerts_worst] || '{_UNKNOWN}'"
           :label="props.value" :title="props.row.alerts_firing + ' firing, worst ' + props.row.alerts_worst"
           data-testid="alerts-badge" />
</q-td>
"""
_LAST_SEEN_CELL = """
<q-td :props="props"><span :title="props.row.last_seen_exact">{{ props.value }}</span></q-td>
"""


def fleet_table(pagination: dict) -> ui.table:
    table = ui.table(columns=COLUMNS, rows=[], row_key="machine_id", pagination=pagination)
    table.props(f'flat bordered dense binary-state-sort :rows-per-page-options="{list(ROWS_PER_PAGE_OPTIONS)}"')
    table.classes("w-full")
    table.add_slot("body-cell-machine_id", _MACHINE_CELL)
    table.add_slot("body-cell-status", _STATUS_CELL)
    table.add_slot("body-cell-alerts", _ALERTS_CELL)
    table.add_slot("body-cell-health_score", _HEALTH_CELL)
    table.add_slot("body-cell-last_seen", _LAST_SEEN_CELL)
    return table
