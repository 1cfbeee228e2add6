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
#   agent_key_from_file FILE
#
# Prints the key held in FILE ("-": standard input), its first line without spaces around it:
# installers take keys from a file or stdin, never from a command line (other users see those).

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

agent_key_from_file() {
    # shellcheck disable=SC3043
    local line
    if [ "$1" = - ]; then IFS= read -r line || [ -n "$line" ]; else IFS= read -r line <"$1" || [ -n "$line" ]; fi
    printf '%s' "$line" | sed -e 's/^[[:space:]]*//' -e 's/[[:space:]]*$//'
}

write_agent_config() {
    # shellcheck disable=SC3043  # not POSIX, but dash (Debian) and bash (macOS /bin/sh) have it
    local agent="$1" config="$2" server="$3" token="$4" file_mode="$5" key_name="${6:-token}" new dir
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

install_allowlist() {
    # shellcheck disable=SC3043  # as above
    local template="$1" folder="$2" group="$3"
    mkdir -p "$folder" && chown "root:$group" "$folder" && chmod 0755 "$folder" || return 1
    [ -e "$folder/allowlist.toml" ] && return 0
    cp "$template" "$folder/allowlist.toml.new" && chown "root:$group" "$folder/allowlist.toml.new" &&
        chmod 0644 "$folder/allowlist.toml.new" && mv -f "$folder/allowlist.toml.new" "$folder/allowlist.toml"
}
