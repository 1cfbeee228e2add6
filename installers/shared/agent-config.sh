# Writes the agent's machine-wide agent.toml at install time. Sourced by the Linux package's
# postinst and the macOS package's postinstall, so both write the file the same way. POSIX sh.
#
#   write_agent_config AGENT CONFIG SERVER KEY FILE_MODE [KEY_NAME]
#
# AGENT is the installed agent program, CONFIG the file (e.g. /etc/xdg/dashfleet/agent.toml),
# FILE_MODE 0600 or 0644, KEY_NAME enroll_token (an enrol key: each machine buys its own key with
# it, the recommended way) or token (an organisation key, as before; the default). The new file is
# checked by the agent itself (--print-config) before it replaces anything; on a bad value the
# function returns 1 with the agent's complaint in AGENT_CONFIG_PROBLEM, and the existing file
# stays as it was. The file holds one key: writing one removes the other. Keys other than server,
# token and enroll_token that an administrator added (machine_id, interval, ca_bundle, ...) are kept.
#
# A plain http:// server is refused (AGENT_CONFIG_PROBLEM says why, nothing changes) unless the
# installer was told explicitly: AGENT_ALLOW_HTTP set to 1, true or yes (the installers set it from
# DASHFLEET_ALLOW_HTTP, or the Debian package's question dashfleet-agent/allow_http). Over http://
# the enrol key and every report cross the network in the clear.
#
#   agent_key_from_file FILE
#
# Prints the key held in FILE ("-": standard input), its first line without spaces around it:
# installers take keys from a file or stdin, never from a command line (other users see those).

#   enrol_as_root AGENT CONFIG ENROL_KEY ENROL_KEY_FILE STATE_DIR
#
# For desktops, where the agent runs as each signed-in user and reads CONFIG: no enrol key may sit
# there (it can enrol any number of new machine ids). Root enrols this machine instead: the agent
# itself, run once as root with CONFIG's settings and ENROL_KEY, buys this machine's own key (it
# speaks for this machine only; the one it holds already is kept while the server accepts it), which
# replaces the key in CONFIG (then 0644). ENROL_KEY goes to
# ENROL_KEY_FILE (root's, 0600) for a later re-enrolment; STATE_DIR (root's, 0700) keeps root's
# agent state (the hardware id where the OS has none). On failure: returns 1 with the reason in
# AGENT_CONFIG_PROBLEM, and CONFIG is left as it was.
#
#   agent_enroll_token_in CONFIG
#
# Prints the enroll_token of CONFIG, if it has one (keys are api_ and URL-safe characters).

# The allow-list of the scripts run_script may run (docs/agent.md, "The allow-list of scripts"):
#
#   install_allowlist TEMPLATE FOLDER GROUP
#
# makes FOLDER (root:GROUP, 0755) and, unless one exists (IT's: kept as it is), FOLDER/allowlist.toml
# from TEMPLATE, root:GROUP 0644: readable by the agent of every user, writable by root only.

AGENT_CONFIG_HEADER="# Written by the DashFleet agent installer (server, token). Other keys you add here are kept."
AGENT_CONFIG_PROBLEM=

agent_toml_string() {  # a TOML basic string; control characters are left for the agent to refuse
    printf '"%s"' "$(printf '%s' "$1" | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g')"
}

agent_http_allowed() {  # SERVER: true unless it is http:// and AGENT_ALLOW_HTTP does not allow it
    case "$1" in
        [Hh][Tt][Tt][Pp]://*) ;;
        *) return 0 ;;
    esac
    case "${AGENT_ALLOW_HTTP:-}" in
        1 | [Tt][Rr][Uu][Ee] | [Yy][Ee][Ss]) return 0 ;;
    esac
    AGENT_CONFIG_PROBLEM="$1 is plain http://: the key and every report would cross the network unencrypted. Use the server's https:// address, or allow http:// explicitly (DASHFLEET_ALLOW_HTTP=1) on a network you trust"
    return 1
}

agent_key_from_file() {
    # shellcheck disable=SC3043
    local line
    if [ "$1" = - ]; then IFS= read -r line || [ -n "$line" ]; else IFS= read -r line <"$1" || [ -n "$line" ]; fi
    printf '%s' "$line" | sed -e 's/^[[:space:]]*//' -e 's/[[:space:]]*$//'
}

write_agent_config() {
    # shellcheck disable=SC3043  # not POSIX, but dash (Debian) and bash (macOS /bin/sh) have it
    local agent="$1" config="$2" server="$3" token="$4" file_mode="$5" key_name="${6:-token}" new dir
    agent_http_allowed "$server" || return 1
    new=$(mktemp "${TMPDIR:-/tmp}/dashfleet-agent.XXXXXX") || return 1  # 0600: it holds the key
    {
        printf '%s\n' "$AGENT_CONFIG_HEADER"  # printf: dash's echo would eat the backslashes
        printf 'server = %s\n' "$(agent_toml_string "$server")"
        if [ "$key_name" = enroll_token ]; then
            printf 'enroll_token = %s\n' "$(agent_toml_string "$token")"
        else
            printf 'token = %s\n' "$(agent_toml_string "$token")"
        fi
        if [ -f "$config" ]; then
            grep -v -E '^[[:space:]]*(server|token|enroll_token)[[:space:]]*=' "$config" | grep -v -x -F "$AGENT_CONFIG_HEADER" || true
        fi
    } >"$new"
    # This file alone (env -i): no DASHFLEET_* variable of the installer's may hide a mistake.
    if ! AGENT_CONFIG_PROBLEM=$(env -i PATH=/usr/bin:/bin "$agent" --config "$new" --print-config 2>&1 >/dev/null); then
        rm -f "$new"
        AGENT_CONFIG_PROBLEM=$(printf '%s' "$AGENT_CONFIG_PROBLEM" | sed -e "s|$new|agent.toml|g" -e 's/^dashfleet-agent: error: //')
        return 1
    fi
    dir=$(dirname "$config")
    mkdir -p "$dir" && chmod 0755 "$dir" || return 1  # a readable folder; the file decides who reads
    # Copied beside the target first, so the final rename is atomic.
    cp "$new" "$config.new" && rm -f "$new" && chmod "$file_mode" "$config.new" && mv -f "$config.new" "$config"
}

agent_enroll_token_in() {
    sed -n 's/^[[:space:]]*enroll_token[[:space:]]*=[[:space:]]*"\([A-Za-z0-9_-]*\)"[[:space:]]*$/\1/p' "$1" | head -n 1
}

agent_once_as_root() {  # AGENT STATE: one report with STATE/enrol.toml, the agent's state in STATE
    env -i PATH=/usr/bin:/bin HOME="$2" XDG_STATE_HOME="$2" PYTHON_KEYRING_BACKEND=keyring.backends.null.Keyring \
        "$1" --config "$2/enrol.toml" --once --no-tray
}

enrol_as_root() {
    # shellcheck disable=SC3043  # as above
    local agent="$1" config="$2" enroll_key="$3" key_file="$4" state="$5" out machine_key identity
    case "$enroll_key" in
        api_*) ;;
        *) AGENT_CONFIG_PROBLEM="no enrol key to enrol this machine with" && return 1 ;;
    esac
    mkdir -p "$state" && chmod 0700 "$state" || return 1
    {
        grep -v -E '^[[:space:]]*(token|enroll_token)[[:space:]]*=' "$config" || true
        printf 'enroll_token = %s\n' "$(agent_toml_string "$enroll_key")"
    } >"$state/enrol.toml"
    # The key root's agent holds already is kept while the server accepts it (an upgrade, a second
    # install: the agents of signed-in users keep working with it). It is dropped when the server or
    # machine id changed, or when the server refuses it (an admin reset the enrolment): then the
    # machine enrols again. The agent's state folder is $XDG_STATE_HOME/dashfleet on Linux, under
    # $HOME/Library on macOS: keys are found wherever they are.
    identity=$(grep -E '^[[:space:]]*(server|machine_id)[[:space:]]*=' "$state/enrol.toml" || true)
    if [ "$identity" != "$(cat "$state/identity" 2>/dev/null || true)" ]; then
        find "$state" -type f -name 'machine-key-*' -exec rm -f {} + || return 1
        printf '%s\n' "$identity" >"$state/identity" || return 1
    fi
    # One report and heartbeat (enrolling first when there is no key). No OS credential store
    # (root, no session): the agent keeps the key in a file of its state folder, read below.
    if ! agent_once_as_root "$agent" "$state" >/dev/null 2>&1; then
        find "$state" -type f -name 'machine-key-*' -exec rm -f {} +
        if ! out=$(agent_once_as_root "$agent" "$state" 2>&1); then
            rm -f "$state/enrol.toml"
            AGENT_CONFIG_PROBLEM="could not enrol this machine with the server (on a desktop root enrols it, since every user reads the configuration): $(printf '%s' "$out" | tail -n 2 | tr '\n' ' ')"
            return 1
        fi
    fi
    rm -f "$state/enrol.toml"
    machine_key=$(find "$state" -type f -name 'machine-key-*' ! -name '*.*' -exec cat {} + 2>/dev/null || true)
    case "$machine_key" in
        api_*) ;;
        *) AGENT_CONFIG_PROBLEM="the agent enrolled but kept no key in $state" && return 1 ;;
    esac
    printf '%s\n' "$enroll_key" >"$key_file.new" && chmod 0600 "$key_file.new" && mv -f "$key_file.new" "$key_file" ||
        return 1
    {
        grep -v -E '^[[:space:]]*(token|enroll_token)[[:space:]]*=' "$config" || true
        printf 'token = %s\n' "$(agent_toml_string "$machine_key")"
    } >"$config.new" && chmod 0644 "$config.new" && mv -f "$config.new" "$config"
}

install_allowlist() {
    # shellcheck disable=SC3043  # as above
    local template="$1" folder="$2" group="$3"
    mkdir -p "$folder" && chown "root:$group" "$folder" && chmod 0755 "$folder" || return 1
    [ -e "$folder/allowlist.toml" ] && return 0
    cp "$template" "$folder/allowlist.toml.new" && chown "root:$group" "$folder/allowlist.toml.new" &&
        chmod 0644 "$folder/allowlist.toml.new" && mv -f "$folder/allowlist.toml.new" "$folder/allowlist.toml"
}
