#!/usr/bin/env bash
# macOS: packages dist/DashFleetAgent.app (made by installers/pyinstaller/build.sh on a Mac) as
# dist/dashfleet-agent-<version>.pkg, with the LaunchAgent and the install scripts. Runs in CI
# (.github/workflows/agent-installers.yml); pkgbuild exists only on macOS.
set -euo pipefail
cd "$(dirname "$0")/../.."
HERE=installers/macos
APP=dist/DashFleetAgent.app
IDENTIFIER=com.dashfleet.agent

[ -x "$APP/Contents/MacOS/dashfleet-agent" ] || { echo "build-pkg: $APP is missing; run installers/pyinstaller/build.sh" >&2; exit 1; }
VERSION=$("$APP/Contents/MacOS/dashfleet-agent" --version | awk '{print $2}')

WORK=build/pkg
ROOT=$WORK/root
SCRIPTS=$WORK/scripts
rm -rf "$WORK"
mkdir -p "$ROOT/Applications" "$ROOT/Library/LaunchAgents" "$SCRIPTS"
cp -R "$APP" "$ROOT/Applications/"
install -m 0755 "$HERE/uninstall.sh" "$ROOT/Applications/DashFleetAgent.app/Contents/Resources/uninstall.sh"
install -m 0644 "$HERE/com.dashfleet.agent.plist" "$ROOT/Library/LaunchAgents/$IDENTIFIER.plist"
install -m 0755 "$HERE/scripts/preinstall" "$HERE/scripts/postinstall" "$SCRIPTS/"
install -m 0644 installers/shared/agent-config.sh "$SCRIPTS/agent-config.sh"
install -m 0644 installers/shared/allowlist.toml "$SCRIPTS/allowlist.toml"

# Installed where it is meant to be, not "relocated" to another copy of the app Installer finds.
pkgbuild --analyze --root "$ROOT" "$WORK/components.plist"
plutil -replace 0.BundleIsRelocatable -bool NO "$WORK/components.plist"

pkgbuild --root "$ROOT" --component-plist "$WORK/components.plist" --scripts "$SCRIPTS" \
  --identifier "$IDENTIFIER" --version "$VERSION" --install-location / --ownership recommended \
  "dist/dashfleet-agent-$VERSION.pkg"
echo "dist/dashfleet-agent-$VERSION.pkg"
