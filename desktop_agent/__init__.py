"""DashFleet's desktop agent: collects this machine's health, reports it, shows it in the tray."""

import sys

# httpx imports its command-line client (click, rich, pygments: about 5 MiB of RSS) whenever those
# happen to be installed. The agent never uses it; a None entry makes that optional import fail
# the way httpx expects when they are absent. Done here, before anything imports httpx.
sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]  # None is how Python marks "absent"
