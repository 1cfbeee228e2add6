#!/usr/bin/env bash
# Puts the agent packages this machine can build into the server's downloads folder (GET
# /downloads/, install links): the wheel always, the .deb where dpkg-deb exists (Debian, Ubuntu),
# and the Windows and macOS installers when CI's builds were placed in dist/ beforehand.
#
#   installers/server/build-downloads.sh [DEST]     (default data/downloads; `make downloads`)
#
# The server hands out only packages of its own version; older files here stay listed but unused.
set -euo pipefail
cd "$(dirname "$0")/../.."
DEST=${1:-data/downloads}
PYTHON=${PYTHON:-python3}
VERSION=$("$PYTHON" -c 'from common.version import __version__; print(__version__)')
mkdir -p "$DEST"

# The wheel (pure Python, any OS): the venv installs on other Linux distributions and on macOS.
"$PYTHON" -m pip wheel -q --no-deps -w "$DEST" .
echo "$DEST/dashfleet-$VERSION-py3-none-any.whl"

# The .deb for this machine's architecture (PyInstaller build, then dpkg-deb; about a minute).
if command -v dpkg-deb >/dev/null 2>&1; then
  make --no-print-directory agent-deb >/dev/null
  cp -f "dist/dashfleet-agent_${VERSION}_$(dpkg --print-architecture).deb" "$DEST/"
  echo "$DEST/dashfleet-agent_${VERSION}_$(dpkg --print-architecture).deb"
else
  echo "build-downloads: no dpkg-deb here, so no .deb (build it on Debian or Ubuntu)" >&2
fi

# Installers built elsewhere (the agent-installers workflow's artifacts), when placed in dist/.
for built in "dist/dashfleet-agent-setup-$VERSION.exe" "dist/dashfleet-agent-$VERSION.pkg"; do
  if [ -f "$built" ]; then
    cp -f "$built" "$DEST/"
    echo "$DEST/$(basename "$built")"
  fi
done
