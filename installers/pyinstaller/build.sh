#!/usr/bin/env bash
# Builds the one-folder agent for this OS into dist/dashfleet-agent/ (`make agent-dist`; CI runs it
# on Linux, macOS and Windows under bash).
#
# The build runs in a virtual environment of its own holding only `.[agent]` and PyInstaller:
# PyInstaller bundles whatever the build environment can import, so the project's main venv (with
# the server's libraries) must never be the one that builds the agent.
set -euo pipefail
cd "$(dirname "$0")/../.."

PYTHON=${PYTHON:-python3}
VENV=${AGENT_BUILD_VENV:-build/agent-venv}
case "$(uname -s)" in
  MINGW* | MSYS* | CYGWIN*) BIN=$VENV/Scripts ;;
  *) BIN=$VENV/bin ;;
esac
STAMP=$VENV/.installed
REQUIREMENTS=installers/pyinstaller/requirements.txt

if [ ! -f "$STAMP" ] || [ pyproject.toml -nt "$STAMP" ] || [ "$REQUIREMENTS" -nt "$STAMP" ]; then
  rm -rf "$VENV"
  "$PYTHON" -m venv "$VENV"
  "$BIN/python" -m pip install -q --upgrade pip
  # The dependencies of `.[agent]` as pyproject.toml lists them, not the project itself: the spec
  # bundles the working tree's desktop_agent/ and common/, and nothing is built in the tree.
  "$BIN/python" - > "$VENV/agent-requirements.txt" <<'PY'
import tomllib
project = tomllib.load(open("pyproject.toml", "rb"))["project"]
print("\n".join(project["dependencies"] + project["optional-dependencies"]["agent"]))
PY
  "$BIN/python" -m pip install -q -r "$VENV/agent-requirements.txt" -r "$REQUIREMENTS"
  touch "$STAMP"
fi

"$BIN/python" -m PyInstaller --noconfirm --log-level WARN --distpath dist --workpath build/pyinstaller \
  installers/pyinstaller/dashfleet-agent.spec
"dist/dashfleet-agent/dashfleet-agent" --version
