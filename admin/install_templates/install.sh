#!/bin/sh
# DashFleet agent install script, served by a DashFleet server for one install link
# (docs/install-agent.md). Run as root: curl -sSL <link>.sh | sudo sh
#
# Linux:  Debian and Ubuntu get the .deb through apt; other distributions get a virtual
#         environment under /opt with a systemd unit and an XDG autostart entry.
# macOS:  the .pkg when the server holds one, else the wheel in a virtual environment with a
#         launch agent.
# Every download comes from the server that served this script and is checked against the SHA-256
# below before anything is installed. Running it again on the same machine updates in place.
#
# The configuration (the server's URL and this link's enrol key, scope "enroll" only) is written
# with printf, a shell builtin: the key never appears on a command line or in the process list.
# Everything runs from the function called on the last line, so a download cut short runs nothing.
set -eu

dashfleet_install() {
    SERVER=@SERVER@
    VERSION=@VERSION@
    CONFIG_LINES=@CONFIG_LINES@
    CONFIG_HEADER='# Written by the DashFleet install script (server, enroll_token). Other keys you add here are kept.'
    # Tests and packagers install under another root (nothing is started then); the method can be
    # forced: auto, deb, pkg or venv.
    ROOT=${DASHFLEET_INSTALL_ROOT:-}
    METHOD=${DASHFLEET_INSTALL_METHOD:-auto}
    VENV_PREFIX=/opt/dashfleet-agent-venv
    INSTALLED_SOMETHING=no

    # Over plain http:// this script, the enrol key and every report cross the network in the
    # clear: only when the person running it says so (the commands the server hands out for an
    # http:// server say so; its administrator had to allow such links explicitly too).
    case "$SERVER" in
        [Hh][Tt][Tt][Pp]://*)
            [ "${DASHFLEET_ALLOW_HTTP:-}" = 1 ] ||
                fail "$SERVER is plain http://: the enrol key and every report would cross the network unencrypted. Use an https:// install link, or allow http:// explicitly on a network you trust: curl -sSL <install link>.sh | sudo env DASHFLEET_ALLOW_HTTP=1 sh"
            say "warning: $SERVER is plain http:// (allowed by DASHFLEET_ALLOW_HTTP=1)"
            ;;
    esac
    if [ "$(id -u)" != 0 ] && [ -z "$ROOT" ]; then
        fail "run it as root: curl -sSL <install link>.sh | sudo sh"
    fi
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/dashfleet-install.XXXXXX") || fail "cannot make a temporary folder"
    trap 'rm -rf "$WORK"' EXIT
    chmod 0755 "$WORK"  # apt reads the .deb as its own unprivileged user

    case "$(uname -s)" in
        Linux) install_linux ;;
        Darwin) install_macos ;;
        *) fail "this script installs on Linux and macOS; on Windows use the PowerShell command" ;;
    esac
    say "DashFleet agent $VERSION is installed and configured for $SERVER."
    say "It enrols with the server on its first start and shows up on the fleet page within a minute."
}

say() {
    printf 'dashfleet: %s\n' "$*" >&2
}

fail() {
    say "$*"
    if [ "${INSTALLED_SOMETHING:-no}" = no ]; then
        say "nothing was installed"
    fi
    exit 1
}

# package_for KIND ARCH: sets PKG_NAME and PKG_SHA256 to this server's package, or returns 1.
package_for() {
    case "$1 $2" in
@PACKAGES@
        *) return 1 ;;
    esac
}

fetch() {  # URL FILE
    if command -v curl >/dev/null 2>&1; then
        curl -fsSL --retry 3 -o "$2" "$1"
    elif command -v wget >/dev/null 2>&1; then
        wget -q -O "$2" "$1"
    else
        fail "needs curl or wget to download the agent"
    fi
}

sha256_of() {
    if command -v sha256sum >/dev/null 2>&1; then
        sha256sum "$1" | cut -d ' ' -f 1
    elif command -v shasum >/dev/null 2>&1; then
        shasum -a 256 "$1" | cut -d ' ' -f 1
    else
        fail "needs sha256sum or shasum to check the download"
    fi
}

# download KIND ARCH: fetches this server's package into $WORK and checks its SHA-256 (PKG_FILE).
download() {
    package_for "$1" "$2" || return 1
    PKG_FILE=$WORK/$PKG_NAME
    say "downloading $SERVER/downloads/$PKG_NAME"
    fetch "$SERVER/downloads/$PKG_NAME" "$PKG_FILE" || fail "cannot download $SERVER/downloads/$PKG_NAME"
    actual=$(sha256_of "$PKG_FILE")
    if [ "$actual" != "$PKG_SHA256" ]; then
        fail "$PKG_NAME does not match its SHA-256 (expected $PKG_SHA256, got $actual): refusing to install it"
    fi
}

# write_config FILE MODE: server and enroll_token first, then every other line already there
# (machine_id, interval, ca_bundle, ... that an administrator added). An older key (token) goes:
# the agent enrols and keeps a key of its own instead.
write_config() {
    mkdir -p "$(dirname "$1")"
    chmod 0755 "$(dirname "$1")"
    (
        umask 077
        {
            printf '%s\n' "$CONFIG_HEADER"
            printf '%s\n' "$CONFIG_LINES"
            if [ -f "$1" ]; then
                grep -v -E '^[[:space:]]*(server|token|enroll_token)[[:space:]]*=' "$1" |
                    grep -v -E '^# Written by the DashFleet (agent installer|install script) ' || true
            fi
        } >"$1.new"
    )
    chmod "$2" "$1.new"
    mv -f "$1.new" "$1"
}

find_python() {  # a Python 3.11+ with venv, for the virtual environment
    for candidate in python3.13 python3.12 python3.11 python3; do
        if command -v "$candidate" >/dev/null 2>&1 &&
            "$candidate" -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1; then
            command -v "$candidate"
            return 0
        fi
    done
    return 1
}

# install_venv CONFIG: the wheel with the agent's dependencies in $ROOT$VENV_PREFIX.
install_venv() {
    python=$(find_python) || fail "needs Python 3.11 or newer with its venv module (for example: apt install python3-venv, dnf install python3)"
    download wheel any || fail "this server holds no agent wheel for version $VERSION (docs/deploy.md: downloads)"
    write_config "$1" "$2"
    say "installing the agent in $ROOT$VENV_PREFIX (its dependencies come from the Python package index)"
    INSTALLED_SOMETHING=yes
    [ -x "$ROOT$VENV_PREFIX/bin/python" ] || "$python" -m venv "$ROOT$VENV_PREFIX" || fail "cannot make $ROOT$VENV_PREFIX"
    "$ROOT$VENV_PREFIX/bin/python" -m pip install -q --disable-pip-version-check --upgrade "${PKG_FILE}[agent]" >&2 ||
        fail "pip could not install the agent in $ROOT$VENV_PREFIX"
    # The same version again (a second run) is installed again too: the server's build may be newer.
    "$ROOT$VENV_PREFIX/bin/python" -m pip install -q --disable-pip-version-check --force-reinstall --no-deps "$PKG_FILE" >&2 ||
        fail "pip could not install the agent in $ROOT$VENV_PREFIX"
}

# enrol_machine CONFIG STATE: where the agent runs as each signed-in user (desktops), every user
# reads CONFIG, and an enrol key there could enrol any number of new machine ids. So root enrols
# this machine now, with the agent just installed, and CONFIG (then 0644) gets this machine's own
# key, which speaks for this machine only; the enrol key stays beside it in enroll-token, root's
# (0600). STATE (0700) keeps root's agent state. The packages do the same in their scripts
# (installers/shared/agent-config.sh).
enrol_machine() {
    mkdir -p "$2" && chmod 0700 "$2"
    # The key root's agent holds already is kept while the server accepts it (running this again
    # updates in place: the agents of signed-in users keep working with it); dropped when the
    # server or machine id changed or the server refuses it (an enrolment reset): then it enrols.
    identity=$(grep -E '^[[:space:]]*(server|machine_id)[[:space:]]*=' "$1" || true)
    if [ "$identity" != "$(cat "$2/identity" 2>/dev/null || true)" ]; then
        find "$2" -type f -name 'machine-key-*' -exec rm -f {} +
        printf '%s\n' "$identity" >"$2/identity"
    fi
    # One report and heartbeat (enrolling first when there is no key); no OS credential store for
    # root: the key is kept in a file of the agent's state folder ($XDG_STATE_HOME on Linux, under
    # $HOME on macOS).
    if ! agent_once_as_root "$1" "$2" >/dev/null 2>&1; then
        find "$2" -type f -name 'machine-key-*' -exec rm -f {} +
        agent_once_as_root "$1" "$2" >&2 ||
            fail "the agent could not enrol this machine with $SERVER; $1 keeps the enrol key, readable by root only (run this script again once the server is reachable)"
    fi
    machine_key=$(find "$2" -type f -name 'machine-key-*' ! -name '*.*' -exec cat {} +)
    case "$machine_key" in
        api_*) ;;
        *) fail "the agent enrolled but kept no key in $2" ;;
    esac
    (
        umask 077
        printf '%s\n' "$CONFIG_LINES" | sed -n 's/^enroll_token = "\(.*\)"$/\1/p' >"$(dirname "$1")/enroll-token"
        {
            grep -v -E '^[[:space:]]*(token|enroll_token)[[:space:]]*=' "$1" || true
            printf 'token = "%s"\n' "$machine_key"
        } >"$1.new"
    )
    chmod 0644 "$1.new"
    mv -f "$1.new" "$1"
    say "enrolled this machine; $1 holds its own key (the enrol key stays in $(dirname "$1")/enroll-token, root's)"
}

agent_once_as_root() {  # CONFIG STATE
    env -i PATH=/usr/bin:/bin HOME="$2" XDG_STATE_HOME="$2" PYTHON_KEYRING_BACKEND=keyring.backends.null.Keyring \
        "$ROOT$VENV_PREFIX/bin/dashfleet-agent" --config "$1" --once --no-tray
}

graphical() {
    [ "$(systemctl get-default 2>/dev/null || true)" = graphical.target ]
}

install_linux() {
    config=$ROOT/etc/xdg/dashfleet/agent.toml
    use_deb=no
    if [ "$METHOD" = deb ] || { [ "$METHOD" = auto ] && command -v apt-get >/dev/null 2>&1 && command -v dpkg >/dev/null 2>&1; }; then
        arch=$(dpkg --print-architecture)
        if package_for deb "$arch"; then
            use_deb=yes
        elif [ "$METHOD" = deb ]; then
            fail "this server holds no .deb for $arch (version $VERSION)"
        else
            say "this server holds no .deb for $arch: installing in a virtual environment instead"
        fi
    fi
    if [ "$use_deb" = yes ]; then
        download deb "$arch"
        # Written before the package, root's only: its postinst keeps this file (0600 for the
        # service); on a desktop it enrols the machine as root and the file, now holding the
        # machine's own key instead of the enrol key, becomes readable by the session's agent.
        write_config "$config" 0600
        say "installing $PKG_NAME with apt"
        INSTALLED_SOMETHING=yes
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --reinstall --allow-downgrades "$PKG_FILE" >&2 ||
            fail "apt-get could not install $PKG_NAME"
        [ -d /run/systemd/system ] || say "no systemd here: start the agent with: dashfleet-agent --no-tray"
        return 0
    fi
    [ "$METHOD" = auto ] || [ "$METHOD" = venv ] || fail "unknown DASHFLEET_INSTALL_METHOD '$METHOD' for Linux (auto, deb or venv)"
    case "${DASHFLEET_AGENT_MODE:-auto}" in
        desktop | headless) mode=$DASHFLEET_AGENT_MODE ;;
        auto) if graphical; then mode=desktop; else mode=headless; fi ;;
        *) fail "unknown DASHFLEET_AGENT_MODE '$DASHFLEET_AGENT_MODE' (auto, desktop or headless)" ;;
    esac
    install_venv "$config" 0600
    if [ "$mode" = desktop ]; then
        enrol_machine "$config" "$ROOT/var/lib/dashfleet-agent-enrolment"
    fi
    mkdir -p "$ROOT/etc/systemd/system" "$ROOT/etc/xdg/autostart"
    cat >"$ROOT$VENV_PREFIX/session-autostart" <<SESSION
#!/bin/sh
# Started in each desktop session; the system service, when it runs, already reports.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet dashfleet-agent.service 2>/dev/null; then
    exit 0
fi
exec $VENV_PREFIX/bin/dashfleet-agent "\$@"
SESSION
    chmod 0755 "$ROOT$VENV_PREFIX/session-autostart"
    cat >"$ROOT/etc/xdg/autostart/dashfleet-agent.desktop" <<DESKTOP
[Desktop Entry]
Type=Application
Name=DashFleet Agent
Comment=Reports this computer's health to your organisation's DashFleet server
Exec=$VENV_PREFIX/session-autostart
Terminal=false
NoDisplay=true
X-GNOME-Autostart-Delay=5
DESKTOP
    cat >"$ROOT/etc/systemd/system/dashfleet-agent.service" <<UNIT
[Unit]
Description=DashFleet agent: reports this machine's health to the DashFleet server
Wants=network-online.target
After=network-online.target
ConditionPathExists=/etc/xdg/dashfleet/agent.toml

[Service]
Type=simple
LoadCredential=agent.toml:/etc/xdg/dashfleet/agent.toml
ExecStart=$VENV_PREFIX/bin/dashfleet-agent --no-tray --config \${CREDENTIALS_DIRECTORY}/agent.toml
DynamicUser=yes
StateDirectory=dashfleet
Environment=XDG_STATE_HOME=/var/lib HOME=/var/lib/dashfleet
ProtectSystem=strict
ProtectHome=read-only
PrivateTmp=yes
NoNewPrivileges=yes
Restart=on-failure
RestartSec=15
RestartPreventExitStatus=2

[Install]
WantedBy=multi-user.target
UNIT
    if [ -n "$ROOT" ]; then
        say "installed under $ROOT: nothing started"
    elif [ ! -d /run/systemd/system ]; then
        say "no systemd here: start the agent with: $VENV_PREFIX/bin/dashfleet-agent --no-tray"
    elif [ "$mode" = headless ]; then
        systemctl daemon-reload
        systemctl enable dashfleet-agent.service >/dev/null 2>&1
        systemctl restart dashfleet-agent.service
        say "the agent runs as the service dashfleet-agent (journalctl -u dashfleet-agent)"
    else
        systemctl daemon-reload
        systemctl disable --now dashfleet-agent.service >/dev/null 2>&1 || true
        say "the agent starts with its tray icon at each desktop sign-in"
    fi
}

install_macos() {
    config="$ROOT/Library/Application Support/dashfleet/agent.toml"
    if [ "$METHOD" != venv ] && package_for macos any; then
        download macos any
        # Root's only: the package's postinstall enrols the machine as root and then makes the file,
        # holding the machine's own key instead of the enrol key, readable by each user's agent.
        write_config "$config" 0600
        say "installing $PKG_NAME"
        INSTALLED_SOMETHING=yes
        installer -pkg "$PKG_FILE" -target / >&2 || fail "installer could not install $PKG_NAME"
        return 0
    fi
    install_venv "$config" 0600
    enrol_machine "$config" "$ROOT/Library/Application Support/dashfleet-agent-enrolment"
    plist=$ROOT/Library/LaunchAgents/com.dashfleet.agent.plist
    mkdir -p "$(dirname "$plist")"
    cat >"$plist" <<PLIST
<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
    <key>Label</key><string>com.dashfleet.agent</string>
    <key>ProgramArguments</key><array><string>$VENV_PREFIX/bin/dashfleet-agent</string></array>
    <key>RunAtLoad</key><true/>
    <key>KeepAlive</key><dict><key>SuccessfulExit</key><false/></dict>
</dict>
</plist>
PLIST
    chmod 0644 "$plist"
    if [ -n "$ROOT" ]; then
        say "installed under $ROOT: nothing started"
        return 0
    fi
    chown root:wheel "$plist"
    user=$(stat -f %Su /dev/console)
    if [ -n "$user" ] && [ "$user" != root ]; then
        uid=$(id -u "$user")
        launchctl bootout "gui/$uid/com.dashfleet.agent" 2>/dev/null || true
        launchctl bootstrap "gui/$uid" "$plist" || say "the agent starts at $user's next sign-in"
    fi
}

dashfleet_install "$@"
