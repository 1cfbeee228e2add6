#!/bin/sh
# Removes the DashFleet agent from this Mac; --purge also removes its configuration.
#   sudo "/Applications/DashFleetAgent.app/Contents/Resources/uninstall.sh" [--purge]
# Per-user logs and queues (~/Library/Logs/dashfleet, ~/Library/Application Support/dashfleet)
# belong to each user and are left alone.
set -e
LABEL=com.dashfleet.agent
CONFIG_DIR="/Library/Application Support/dashfleet"
if [ "$(id -u)" != 0 ]; then
    echo "uninstall.sh: run it with sudo" >&2
    exit 1
fi
case "${1:-}" in
    "" | --purge) ;;
    *) echo "usage: uninstall.sh [--purge]" >&2; exit 2 ;;
esac

for user in $(who | awk '{print $1}' | sort -u); do
    launchctl bootout "gui/$(id -u "$user")/$LABEL" 2>/dev/null || true
done
rm -f /Library/LaunchAgents/$LABEL.plist /usr/local/bin/dashfleet-agent
rm -rf /Applications/DashFleetAgent.app
pkgutil --forget $LABEL >/dev/null 2>&1 || true
if [ "${1:-}" = --purge ]; then
    rm -rf "$CONFIG_DIR" "$CONFIG_DIR-agent-enrolment"  # the configuration, root's enrolment (postinstall)
fi
echo "DashFleet agent removed${1:+ (configuration too)}"
