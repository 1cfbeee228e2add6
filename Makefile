# Two commands on a fresh clone: `make demo` and `make test`. Each does every set-up step first.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test sysdeps venv lint bench agent-dist agent-deb downloads clean

# The demo serves the agent it built (GET /downloads/, install links): the wheel, and the .deb on
# Debian and Ubuntu (the first build takes a minute or two; later ones only when the agent changed).
demo: venv downloads
	$(VENV)/bin/dashfleet-admin demo

downloads: venv
	PYTHON=$(abspath $(PY)) installers/server/build-downloads.sh data/downloads

# The suite runs on one pytest-xdist worker per core (PYTEST_WORKERS=0: in this process, serially):
# its tests mostly wait on the real servers, agents and browsers they start. Tests that change the
# machine itself (dpkg, the packaged agent's build) take turns (the `machine_wide` mark).
PYTEST_WORKERS ?= auto

# Compiled first: where PYTHONDONTWRITEBYTECODE is set (CI here), each of the suite's hundreds of
# server, CLI and agent processes would otherwise compile our modules again at start.
test: sysdeps venv
	$(PY) -m compileall -q admin common desktop_agent tests >/dev/null
	$(PY) -m pytest -n $(PYTEST_WORKERS) $(PYTEST_ARGS)

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

# Debian packages the browser, tray, notification and installer tests need; installed only when missing.
SYS_BINARIES := chromium chromedriver Xvfb trayer dunst dbus-daemon shellcheck strace
sysdeps:
	@missing=""; for b in $(SYS_BINARIES); do command -v $$b >/dev/null || missing="$$missing $$b"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages for:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq \
	    chromium chromium-driver xvfb trayer x11-utils dunst dbus shellcheck strace >/dev/null; \
	fi

lint: venv
	$(VENV)/bin/lint-imports

# wrk (Debian) drives the server benchmarks; without it they fall back to a slower httpx generator.
bench: venv
	$(PY) -m pip install -q -e '.[bench]'
	@command -v wrk >/dev/null || { SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get install -y -qq wrk >/dev/null || echo "wrk not installed: using the httpx load generator"; }
	$(PY) bench/run_all.py

# The desktop agent as a one-folder program for this OS (dist/dashfleet-agent/), built in a venv of
# its own with only the agent's dependencies; then as a Debian package (dist/*.deb).
# Rebuilt only when the agent's code or its build recipe changed (a build takes a minute).
AGENT_BUILD_INPUTS := $(wildcard desktop_agent/*.py common/*.py installers/pyinstaller/* installers/pyinstaller/hooks/* installers/pyinstaller/hooks/rthooks/*) pyproject.toml
agent-dist: dist/dashfleet-agent/dashfleet-agent

dist/dashfleet-agent/dashfleet-agent: $(AGENT_BUILD_INPUTS)
	PYTHON=$(PYTHON) installers/pyinstaller/build.sh
	touch $@

agent-deb: agent-dist
	installers/linux/build-deb.sh

clean:
	rm -rf $(VENV) build dist *.egg-info
