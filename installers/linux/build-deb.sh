#!/usr/bin/env bash
# Packages the agent built by `make agent-dist` (dist/dashfleet-agent/) as
# dist/dashfleet-agent_<version>_<arch>.deb (`make agent-deb`). Needs dpkg-deb, no root:
# --root-owner-group makes every file root's in the package.
set -euo pipefail
cd "$(dirname "$0")/../.."
HERE=installers/linux
BUNDLE=dist/dashfleet-agent

[ -x "$BUNDLE/dashfleet-agent" ] || { echo "build-deb: $BUNDLE is missing; run make agent-dist" >&2; exit 1; }
# The version of what is packaged, from the built program itself ("dashfleet-agent 1.2.3").
VERSION=$("$BUNDLE/dashfleet-agent" --version | awk '{print $2}')
ARCH=$(dpkg --print-architecture)

ROOT=build/deb/root
rm -rf "$ROOT"
install -d "$ROOT/DEBIAN" "$ROOT/opt" "$ROOT/usr/bin" "$ROOT/etc/xdg/autostart" "$ROOT/lib/systemd/system"
cp -a "$BUNDLE" "$ROOT/opt/dashfleet-agent"
install -m 0755 "$HERE/session-autostart" "$ROOT/opt/dashfleet-agent/session-autostart"
install -m 0644 installers/shared/agent-config.sh "$ROOT/opt/dashfleet-agent/agent-config.sh"
install -m 0644 installers/shared/allowlist.toml "$ROOT/opt/dashfleet-agent/allowlist.toml.template"
cat >"$ROOT/opt/dashfleet-agent/README.txt" <<TXT
DashFleet agent $VERSION. Configuration: /etc/xdg/dashfleet/agent.toml (see docs/install-agent.md).
Headless: systemctl status dashfleet-agent; journalctl -u dashfleet-agent.
TXT
ln -s /opt/dashfleet-agent/dashfleet-agent "$ROOT/usr/bin/dashfleet-agent"
install -m 0644 "$HERE/dashfleet-agent.desktop" "$ROOT/etc/xdg/autostart/dashfleet-agent.desktop"
install -m 0644 "$HERE/dashfleet-agent.service" "$ROOT/lib/systemd/system/dashfleet-agent.service"

for script in config postinst prerm postrm; do
  install -m 0755 "$HERE/debian/$script" "$ROOT/DEBIAN/$script"
done
install -m 0644 "$HERE/debian/templates" "$ROOT/DEBIAN/templates"
# No conffiles on purpose: the autostart entry must go with `dpkg -r`, or sessions would start a
# program that is gone. agent.toml is written by postinst and removed by postrm purge.
SIZE_KB=$(du -sk --exclude=DEBIAN "$ROOT" | cut -f1)
sed -e "s/@VERSION@/$VERSION/" -e "s/@ARCH@/$ARCH/" -e "s/@INSTALLED_SIZE@/$SIZE_KB/" \
  "$HERE/debian/control.in" >"$ROOT/DEBIAN/control"

OUT=dist/dashfleet-agent_${VERSION}_${ARCH}.deb
# gzip -6: every dpkg reads it; measured here on the 73 MB tree: 10 s (xz: 36 s, gzip -9: 30 s).
dpkg-deb --root-owner-group -Zgzip -z6 --build "$ROOT" "$OUT" >/dev/null
echo "$OUT"
