"""Settings: flags > DASHFLEET_* > agent.toml (user file over the machine-wide one), all checked."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from agent_helpers import run_agent_once

from desktop_agent.config import AgentConfig, ConfigError, config_search_path, resolve

SERVER = "https://fleet.example.com"
TOKEN = "api_" + "k" * 43
NO_FLAGS: dict = {}


@pytest.fixture(autouse=True)
def isolated(agent_dirs, monkeypatch):
    agent_dirs.apply(monkeypatch)


def write(path, text: str):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_search_path_is_the_user_file_then_the_machine_wide_one(agent_dirs):
    assert config_search_path() == [agent_dirs.user_config_file, agent_dirs.site_config_file]


def test_every_folder_of_xdg_config_dirs_is_searched_first_one_winning(agent_dirs, monkeypatch, tmp_path):
    """Desktop sessions set XDG_CONFIG_DIRS=/etc/xdg/xdg-<desktop>:/etc/xdg; installers write /etc/xdg."""
    session, system = tmp_path / "xdg-session", tmp_path / "xdg"
    monkeypatch.setenv("XDG_CONFIG_DIRS", f"{session}:{system}")
    write(system / "dashfleet" / "agent.toml", f'server = "{SERVER}"\ntoken = "{TOKEN}"\ninterval = 10\n')
    write(session / "dashfleet" / "agent.toml", "interval = 20\n")
    config, _ = resolve(NO_FLAGS, environ={})
    assert config.server == SERVER and config.interval == 20


def test_a_file_alone_is_enough_and_defaults_fill_the_rest(agent_dirs):
    write(agent_dirs.site_config_file, f'server = "{SERVER}/"\ntoken = "{TOKEN}"\n')
    config, warnings = resolve(NO_FLAGS, environ={})
    assert config == AgentConfig(server=SERVER, token=TOKEN, machine_id=socket.gethostname())
    assert config.interval == 60 and config.heartbeat_interval == 30 and config.tray is True
    assert warnings == []


def test_every_key_of_the_documented_file_format(agent_dirs, tmp_path):
    import certifi

    ca = write(tmp_path / "ca.pem", Path(certifi.where()).read_text())
    write(
        agent_dirs.site_config_file,
        f"""
server = "{SERVER}"
token = "{TOKEN}"
machine_id = "asset-0042"
interval = 120
heartbeat_interval = 45.5
ca_bundle = "{ca}"
tray = false
dashboard_url = "https://intranet.example.com/help"
language = "fr"
local_warnings = false
""",
    )
    config, _ = resolve(NO_FLAGS, environ={})
    assert config == AgentConfig(
        SERVER, TOKEN, "asset-0042", 120.0, 45.5, str(ca), False, "https://intranet.example.com/help", "fr", False
    )


def test_flags_beat_environment_beat_user_file_beat_machine_file(agent_dirs):
    write(
        agent_dirs.site_config_file,
        f'server = "https://site.example"\ntoken = "{TOKEN}"\nmachine_id = "site"\ninterval = 10\n'
        "heartbeat_interval = 11\n",
    )
    write(agent_dirs.user_config_file, 'machine_id = "user"\ninterval = 20\nheartbeat_interval = 21\n')
    environ = {"DASHFLEET_INTERVAL": "30", "DASHFLEET_HEARTBEAT_INTERVAL": "31"}
    config, _ = resolve({"heartbeat_interval": "41", "machine_id": None}, environ=environ)
    assert config.server == "https://site.example"  # only the machine-wide file has it
    assert config.machine_id == "user"  # user file over machine file
    assert config.interval == 30  # environment over files
    assert config.heartbeat_interval == 41  # flag over environment


def test_explicit_config_file_replaces_the_search(agent_dirs, tmp_path):
    write(agent_dirs.site_config_file, f'server = "https://site.example"\ntoken = "{TOKEN}"\n')
    own = write(tmp_path / "own.toml", f'server = "{SERVER}"\ntoken = "{TOKEN}"\ntray = false\n')
    config, _ = resolve(NO_FLAGS, environ={}, config_file=str(own))
    assert config.server == SERVER and config.tray is False
    config, _ = resolve(NO_FLAGS, environ={"DASHFLEET_CONFIG": str(own)})
    assert config.server == SERVER


def test_unknown_keys_are_a_warning_so_older_agents_read_newer_files(agent_dirs):
    write(agent_dirs.site_config_file, f'server = "{SERVER}"\ntoken = "{TOKEN}"\nfuture_key = 1\n')
    config, warnings = resolve(NO_FLAGS, environ={})
    assert config.server == SERVER
    assert len(warnings) == 1 and "future_key" in warnings[0]


def test_environment_booleans_and_numbers():
    environ = {
        "DASHFLEET_SERVER": SERVER,
        "DASHFLEET_TOKEN": TOKEN,
        "DASHFLEET_TRAY": "no",
        "DASHFLEET_INTERVAL": "2.5",
    }
    config, _ = resolve(NO_FLAGS, environ=environ)
    assert config.tray is False and config.interval == 2.5


def test_machine_id_is_kept_exactly_as_given():
    odd = ' Büro <3> "PC" '
    config, _ = resolve({"server": SERVER, "token": TOKEN, "machine_id": odd}, environ={})
    assert config.machine_id == odd


@pytest.mark.parametrize(
    ("flags", "environ", "message"),
    [
        ({}, {}, "no server URL configured"),
        ({"server": SERVER}, {}, "no API key configured"),
        ({"server": "fleet.example.com", "token": TOKEN}, {}, "is not a server URL"),
        ({"server": "ftp://fleet.example.com", "token": TOKEN}, {}, "is not a server URL"),
        ({"server": "https://fleet.example.com:99999", "token": TOKEN}, {}, "invalid port"),
        ({"server": "https://fleet.example.com/?x=1", "token": TOKEN}, {}, "query or fragment"),
        ({"server": SERVER, "token": "api_ with space"}, {}, "not ASCII"),
        ({"server": SERVER, "token": "   "}, {}, "non-empty"),
        ({"server": SERVER, "token": TOKEN, "machine_id": "x" * 201}, {}, "longer than 200"),
        ({"server": SERVER, "token": TOKEN, "machine_id": "tab\there"}, {}, "printable"),
        ({"server": SERVER, "token": TOKEN, "interval": "0.5"}, {}, "out of range"),
        ({"server": SERVER, "token": TOKEN, "interval": "nan"}, {}, "out of range"),
        ({"server": SERVER, "token": TOKEN, "interval": "often"}, {}, "number of seconds"),
        ({"server": SERVER, "token": TOKEN}, {"DASHFLEET_HEARTBEAT_INTERVAL": "-1"}, "DASHFLEET_HEARTBEAT_INTERVAL"),
        ({"server": SERVER, "token": TOKEN}, {"DASHFLEET_TRAY": "maybe"}, "true or false"),
        ({"server": SERVER, "token": TOKEN, "ca_bundle": "/no/such/ca.pem"}, {}, "not a readable file"),
        ({"server": SERVER, "token": TOKEN, "ca_bundle": __file__}, {}, "no usable PEM certificate"),
        ({"server": SERVER, "token": TOKEN}, {"DASHFLEET_DASHBOARD_URL": "intranet/help"}, "not a web address"),
        ({"server": SERVER, "token": TOKEN}, {"DASHFLEET_DASHBOARD_URL": "javascript:alert(1)"}, "not a web address"),
        ({"server": SERVER, "token": TOKEN}, {"DASHFLEET_LANGUAGE": "de"}, "auto, en, fr"),
        ({"server": SERVER, "token": TOKEN}, {"DASHFLEET_LOCAL_WARNINGS": "sometimes"}, "true or false"),
    ],
)
def test_bad_settings_are_refused_with_a_clear_message(flags, environ, message):
    with pytest.raises(ConfigError, match=message):
        resolve(flags, environ=environ)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('server = "https://x.example"\ntoken = ', "not valid TOML"),
        ('server = 42\ntoken = "api_x"', "non-empty string"),
        ('server = "https://x.example"\ntoken = "api_x"\ninterval = true', "number of seconds"),
        ('server = "https://x.example"\ntoken = "api_x"\ntray = "sometimes"', "true or false"),
        # The file is TOML: numbers are bare and tray a boolean; a quoted value is a mistake there
        # (only environment variables, always strings, are parsed).
        ('server = "https://x.example"\ntoken = "api_x"\ninterval = "60"', "number of seconds"),
        ('server = "https://x.example"\ntoken = "api_x"\nheartbeat_interval = "30"', "number of seconds"),
        ('server = "https://x.example"\ntoken = "api_x"\ntray = "yes"', "true or false"),
        ('server = "https://x.example"\ntoken = "api_x"\ntray = "false"', "true or false"),
        ('server = "https://x.example"\ntoken = "api_x"\ntray = 1', "true or false"),
        ('server = "https://x.example"\ntoken = "api_x"\nlocal_warnings = "no"', "true or false"),
        ('server = "https://x.example"\ntoken = "api_x"\nlanguage = 1', "auto, en, fr"),
    ],
)
def test_bad_files_are_refused_naming_the_file(agent_dirs, text, message):
    path = write(agent_dirs.site_config_file, text)
    with pytest.raises(ConfigError, match=message) as raised:
        resolve(NO_FLAGS, environ={})
    assert str(path) in str(raised.value)
    key = text.splitlines()[-1].split(" = ")[0]
    if key not in ("server", "token"):
        assert f"({key})" in str(raised.value), "the message names the key"


@pytest.mark.parametrize(
    ("line", "message"), [('interval = "60"', "number of seconds"), ('tray = "yes"', "true or false")]
)
def test_the_program_refuses_a_quoted_number_or_boolean_in_the_file(agent_dirs, line, message):
    path = write(agent_dirs.site_config_file, f'server = "{SERVER}"\ntoken = "{TOKEN}"\n{line}\n')
    done = run_agent_once(agent_dirs, "--print-config")
    assert done.returncode == 2 and done.stdout == ""
    key = line.split(" = ")[0]
    assert done.stderr.startswith(f"dashfleet-agent: error: {path} ({key}): "), done.stderr
    assert message in done.stderr and done.stderr.count("\n") == 1


def test_environment_values_stay_strings_over_a_typed_file(agent_dirs):
    write(agent_dirs.site_config_file, f'server = "{SERVER}"\ntoken = "{TOKEN}"\ninterval = 90\ntray = true\n')
    config, _ = resolve(NO_FLAGS, environ={"DASHFLEET_INTERVAL": "45", "DASHFLEET_TRAY": "off"})
    assert config.interval == 45.0 and config.tray is False


# --- through the real program: one line on stderr, status 2, no traceback ---


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "no server URL configured"),
        (["--server", "not a url", "--token", TOKEN], "is not a server URL"),
        (["--server", SERVER], "no API key configured"),
        (["--server", SERVER, "--token", TOKEN, "--interval", "soon"], "--interval"),
        (["--config", "/no/such/agent.toml"], "does not exist"),
    ],
)
def test_the_program_reports_bad_configuration_in_one_line(agent_dirs, args, message):
    done = run_agent_once(agent_dirs, *args, "--once")
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and message in done.stderr, done.stderr
    assert done.stderr.startswith("dashfleet-agent: error: ")
    assert "Traceback" not in done.stderr and done.stdout == ""
    assert not agent_dirs.state_home.exists(), "a refused configuration must not leave state behind"


def test_print_config_shows_the_effective_settings_without_the_token(agent_dirs):
    write(agent_dirs.site_config_file, f'server = "{SERVER}"\ntoken = "{TOKEN}"\ninterval = 90\n')
    done = run_agent_once(agent_dirs, "--print-config", env=agent_dirs.env(DASHFLEET_MACHINE_ID="from-env"))
    assert done.returncode == 0, done.stderr
    assert '"interval": 90.0' in done.stdout and '"machine_id": "from-env"' in done.stdout
    assert TOKEN not in done.stdout


def test_print_config_warns_about_unknown_keys_as_the_agent_does(agent_dirs):
    """Installers and IT check a file with --print-config: a misspelt key must show there too."""
    path = write(agent_dirs.user_config_file, f'server = "{SERVER}"\ntoken = "{TOKEN}"\nintervall = 30\n')
    done = run_agent_once(agent_dirs, "--print-config")
    assert done.returncode == 0, done.stderr
    assert done.stderr == f"dashfleet-agent: warning: unknown setting in config file {path}: intervall (ignored)\n"
    assert '"interval": 60.0' in done.stdout


@pytest.mark.parametrize(
    ("server", "warned"),
    [
        ("http://fleet.example.com:8000", True),
        ("HTTP://10.0.0.5", True),
        ("https://fleet.example.com", False),
        ("http://127.0.0.1:8000", False),
        ("http://localhost:8000", False),
        ("http://[::1]:8000", False),
    ],
)
def test_a_plain_http_server_is_accepted_with_a_warning_unless_it_is_this_machine(server, warned):
    config, warnings = resolve({"server": server, "token": TOKEN}, environ={})
    assert config.server == server.rstrip("/")  # accepted: existing set-ups keep working
    http_warnings = [w for w in warnings if "plain http://" in w]
    assert http_warnings == (
        [
            f"{server} is plain http://: the key and every report cross the network "
            "unencrypted (use the server's https:// address)"
        ]
        if warned
        else []
    )


def test_print_config_shows_the_plain_http_warning(agent_dirs):
    write(agent_dirs.site_config_file, f'server = "http://fleet.example.com"\ntoken = "{TOKEN}"\n')
    done = run_agent_once(agent_dirs, "--print-config")
    assert done.returncode == 0, done.stderr
    assert done.stderr == (
        "dashfleet-agent: warning: http://fleet.example.com is plain http://: the key and every report "
        "cross the network unencrypted (use the server's https:// address)\n"
    )
