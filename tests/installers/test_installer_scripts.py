"""The installers' scripts cannot drift from the agent they install.

The Windows and macOS installers are built and installed only in CI on those systems
(.github/workflows/agent-installers.yml), and the Linux package only as root; this file runs
everywhere, fast, and checks each script's parameters, paths and the config file it writes
against the agent's own code: desktop_agent.config (keys, file name, search path computed by
platformdirs for each OS), desktop_agent.logs and the agent's command-line parser.
"""

from __future__ import annotations

import configparser
import os
import plistlib
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path, PurePosixPath, PureWindowsPath

import platformdirs
import platformdirs.macos
import platformdirs.unix
import platformdirs.windows
import pytest

from desktop_agent import config as agent_config
from desktop_agent.__main__ import build_parser
from desktop_agent.logs import log_dir
from tests.helpers.script_checks import assert_powershell_parses, assert_shell_script_is_clean

REPO_ROOT = Path(__file__).resolve().parents[2]
INSTALLERS = REPO_ROOT / "installers"
LINUX, MACOS, WINDOWS = INSTALLERS / "linux", INSTALLERS / "macos", INSTALLERS / "windows"
SHARED_WRITER = INSTALLERS / "shared" / "agent-config.sh"
SPEC = INSTALLERS / "pyinstaller" / "dashfleet-agent.spec"
ISS = WINDOWS / "dashfleet-agent.iss"
DOCS = REPO_ROOT / "docs" / "install-agent.md"
# Inno Setup's {commonappdata} is the CSIDL_COMMON_APPDATA folder.
WINDOWS_FOLDERS = {
    "CSIDL_COMMON_APPDATA": r"C:\ProgramData",
    "CSIDL_APPDATA": r"C:\Users\it\AppData\Roaming",
    "CSIDL_LOCAL_APPDATA": r"C:\Users\it\AppData\Local",
}
INNO_CONSTANTS = {"{commonappdata}": WINDOWS_FOLDERS["CSIDL_COMMON_APPDATA"]}


def machine_wide_config(monkeypatch, platform_dirs: type) -> str:
    """The machine-wide file the agent reads on an OS, as its own code computes it there."""
    monkeypatch.setattr(platformdirs, "PlatformDirs", platform_dirs)
    _user_file, *site_files = agent_config.config_search_path()
    assert len(site_files) == 1, f"one machine-wide file expected, the agent reads {site_files}"
    return str(site_files[0])


@pytest.fixture
def linux_config(monkeypatch) -> str:
    # A service has no XDG_CONFIG_DIRS; desktop sessions' is handled by session-autostart below.
    monkeypatch.delenv("XDG_CONFIG_DIRS", raising=False)
    return machine_wide_config(monkeypatch, platformdirs.unix.Unix)


@pytest.fixture
def windows_config(monkeypatch) -> PureWindowsPath:
    monkeypatch.setattr(platformdirs.windows, "get_win_folder", WINDOWS_FOLDERS.__getitem__)
    monkeypatch.setattr(os, "pathsep", ";")  # the agent splits platformdirs' list on it
    return PureWindowsPath(machine_wide_config(monkeypatch, platformdirs.windows.Windows))


@pytest.fixture
def macos_config(monkeypatch) -> str:
    # A PyInstaller app is not a Homebrew Python: no /opt/homebrew/share folder comes first.
    monkeypatch.setattr(platformdirs.macos, "_homebrew_prefix", lambda: None)
    return machine_wide_config(monkeypatch, platformdirs.macos.MacOS)


def shell_assignment(script: Path, name: str) -> str:
    match = re.search(rf"^{name}=(.+)$", script.read_text(), re.MULTILINE)
    assert match, f"{script.name} does not set {name}"
    return shlex.split(match.group(1))[0]


def agent_accepts(argv: list[str]) -> None:
    """The agent's own parser takes these arguments (a renamed flag fails here, not on a desktop)."""
    try:
        build_parser().parse_args(argv)
    except SystemExit:
        pytest.fail(f"dashfleet-agent does not accept {argv}")


def spec_name() -> str:
    return re.search(r'^NAME = "([^"]+)"', SPEC.read_text(), re.MULTILINE).group(1)


def written_keys(text: str, pattern: str) -> set[str]:
    keys = set(re.findall(pattern, text))
    assert keys, "no key assignments found"
    return keys


# --------------------------------------------------------------------------------------------
# The agent's format, as every installer must write it


def test_every_installer_writes_the_keys_the_agent_reads():
    assert {"server", "token", "enroll_token"} <= set(agent_config.KEYS)
    shell_keys = written_keys(SHARED_WRITER.read_text(), r"printf '(\w+) = %s\\n' \"\$\(agent_toml_string")
    iss_keys = written_keys(ISS.read_text(), r"'(\w+) = ' \+ TomlString")
    assert shell_keys == iss_keys == {"server", "token", "enroll_token"}
    # The header line each installer writes is the same, so both keep an administrator's lines alike.
    header = shell_assignment(SHARED_WRITER, "AGENT_CONFIG_HEADER")
    assert f'#define ConfigHeader "{header}"' in ISS.read_text()


@pytest.mark.parametrize("token", ['api_"quoted"\\back\\slash', "api_" + "x" * 43])
def test_the_shared_writer_makes_a_file_the_agent_reads(tmp_path, token):
    config = tmp_path / "etc" / "dashfleet" / "agent.toml"
    config.parent.mkdir(parents=True)
    config.write_text('server = "https://old.example.com"\nmachine_id = "asset-42"\ninterval = 30\n')
    done = run_writer(tmp_path, config, "https://fleet.example.com:8443", token, "0644")
    assert done.returncode == 0, done.stderr
    assert tomllib.loads(config.read_text()) == {
        "server": "https://fleet.example.com:8443",
        "token": token,
        "machine_id": "asset-42",
        "interval": 30,
    }
    assert config.stat().st_mode & 0o777 == 0o644
    assert list(config.parent.iterdir()) == [config], "a temporary file was left beside it"


@pytest.mark.parametrize(
    ("server", "token", "complaint"),
    [
        ("ftp://fleet.example.com", "api_x", "is not a server URL"),
        ("https://fleet.example.com", "api with space", "contains spaces"),
        ('https://fleet.example.com"\nmalicious = "1', "api_x", "not valid TOML"),
    ],
)
def test_the_shared_writer_refuses_what_the_agent_would_refuse_and_changes_nothing(tmp_path, server, token, complaint):
    config = tmp_path / "agent.toml"
    config.write_text('server = "https://old.example.com"\ntoken = "api_old"\n')
    config.chmod(0o600)
    before = config.read_bytes()
    done = run_writer(tmp_path, config, server, token, "0644")
    assert done.returncode == 1
    assert complaint in done.stdout, done.stdout
    assert config.read_bytes() == before and config.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["agent", "agent.toml", "tmp"]


def test_the_shared_writer_writes_an_enrol_key_read_from_a_file_instead_of_the_organisation_key(tmp_path):
    config = tmp_path / "agent.toml"
    config.write_text('server = "https://old.example.com"\ntoken = "api_organisation_key"\ninterval = 30\n')
    key_file = tmp_path / "enroll-token"
    key_file.write_text("  api_" + "e" * 43 + "  \n")
    script = f'. {shlex.quote(str(SHARED_WRITER))}\nagent_key_from_file "$1"'
    read = subprocess.run(["sh", "-c", script, "sh", str(key_file)], capture_output=True, text=True, timeout=30)
    from_stdin = subprocess.run(
        ["sh", "-c", script, "sh", "-"], input=key_file.read_text(), capture_output=True, text=True, timeout=30
    )
    assert read.stdout == from_stdin.stdout == "api_" + "e" * 43
    done = run_writer(tmp_path, config, "https://fleet.example.com", read.stdout, "0600", "enroll_token")
    assert done.returncode == 0, done.stderr
    # One key in the file: the enrol key replaces the organisation key, which no longer sits there.
    assert tomllib.loads(config.read_text()) == {
        "server": "https://fleet.example.com",
        "enroll_token": "api_" + "e" * 43,
        "interval": 30,
    }
    assert config.stat().st_mode & 0o777 == 0o600


def run_writer(
    tmp_path: Path, config: Path, server: str, token: str, mode: str, key_name: str = "token", allow_http: str = ""
) -> subprocess.CompletedProcess:
    """Sources installers/shared/agent-config.sh in sh, with the real agent as AGENT."""
    agent = agent_program(tmp_path)
    script = (
        f". {shlex.quote(str(SHARED_WRITER))}\n"
        f'write_agent_config "$1" "$2" "$3" "$4" "$5" "$6" || {{ echo "$AGENT_CONFIG_PROBLEM"; exit 1; }}\n'
    )
    temporary = tmp_path / "tmp"  # where mktemp puts the new file: it must be gone afterwards
    temporary.mkdir(exist_ok=True)
    done = subprocess.run(
        ["sh", "-c", script, "sh", str(agent), str(config), server, token, mode, key_name],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": os.environ["PATH"], "TMPDIR": str(temporary), "AGENT_ALLOW_HTTP": allow_http},
    )
    assert list(temporary.iterdir()) == [], "the writer left its temporary file"
    return done


def agent_program(tmp_path: Path) -> Path:
    """The agent as the installers run it (their bundled program): here this checkout's code."""
    agent = tmp_path / "agent"
    agent.write_text(
        f"#!/bin/sh\nPYTHONPATH={shlex.quote(str(REPO_ROOT))} "
        f'exec {shlex.quote(sys.executable)} -m desktop_agent "$@"\n'
    )
    agent.chmod(0o755)
    return agent


@pytest.mark.parametrize("server", ["http://fleet.example.com", "HTTP://fleet.example.com:8080/"])
def test_the_shared_writer_refuses_plain_http_unless_allowed_explicitly(tmp_path, server):
    config = tmp_path / "agent.toml"
    config.write_text('server = "https://old.example.com"\ntoken = "api_old"\n')
    config.chmod(0o600)
    before = config.read_bytes()
    for allowance in ("", "0", "no", "false", "maybe"):
        done = run_writer(tmp_path, config, server, "api_" + "k" * 43, "0600", "enroll_token", allowance)
        assert done.returncode == 1, allowance
        assert "is plain http://" in done.stdout and "DASHFLEET_ALLOW_HTTP=1" in done.stdout, done.stdout
        assert config.read_bytes() == before
    for allowance in ("1", "true", "yes"):
        done = run_writer(tmp_path, config, server, "api_" + "k" * 43, "0600", "enroll_token", allowance)
        assert done.returncode == 0, done.stdout + done.stderr
        assert tomllib.loads(config.read_text())["server"] == server
    assert run_writer(tmp_path, config, "https://fleet.example.com", "api_" + "k" * 43, "0600").returncode == 0


@pytest.fixture
def sqlite_org(session_server_factory):
    return session_server_factory("sqlite").org()


def run_enrol_as_root(tmp_path: Path, config: Path, enrol_key: str) -> subprocess.CompletedProcess:
    script = (
        f". {shlex.quote(str(SHARED_WRITER))}\n"
        'enrol_as_root "$1" "$2" "$3" "$4" "$5" || { echo "$AGENT_CONFIG_PROBLEM"; exit 1; }\n'
    )
    argv = [str(agent_program(tmp_path)), str(config), enrol_key, str(config.parent / "enroll-token")]
    return subprocess.run(
        ["sh", "-c", script, "sh", *argv, str(tmp_path / "enrolment")],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": os.environ["PATH"]},
    )


def test_enrol_as_root_leaves_a_desktop_config_with_the_machine_key_only(tmp_path, sqlite_org, contract):
    """What the .deb's postinst and the macOS postinstall run on desktops, with the real agent
    against a real server: agent.toml (read by every user) ends with this machine's own key; the
    enrol key only in a root-only file."""
    enrol = sqlite_org.server.make_key(sqlite_org.name, "enroll")["api_key"]
    config = tmp_path / "etc" / "agent.toml"
    config.parent.mkdir()
    config.write_text(
        f'server = "{sqlite_org.server.url}"\nenroll_token = "{enrol}"\nmachine_id = "desk-1"\ninterval = 30\n'
    )
    config.chmod(0o600)
    done = run_enrol_as_root(tmp_path, config, enrol)
    assert done.returncode == 0, done.stdout + done.stderr
    settings = tomllib.loads(config.read_text())
    machine_key = settings.pop("token")
    assert settings == {"server": sqlite_org.server.url, "machine_id": "desk-1", "interval": 30}
    assert config.stat().st_mode & 0o777 == 0o644 and enrol not in config.read_text()
    kept = config.parent / "enroll-token"
    assert kept.read_text().strip() == enrol and kept.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "enrolment").stat().st_mode & 0o777 == 0o700
    assert sorted(p.name for p in config.parent.iterdir()) == ["agent.toml", "enroll-token"]
    # The key is this machine's own: it reports for desk-1 and for nothing else.
    assert sqlite_org.report("desk-1", key=machine_key).status_code == 200
    contract.error(sqlite_org.report("desk-2", key=machine_key), 403)

    # Again (an upgrade, a second install): the key the server accepts is kept, so the agents of
    # signed-in users, which read it at their start, keep working.
    config.write_text(config.read_text().replace(f'token = "{machine_key}"', f'enroll_token = "{enrol}"'))
    again = run_enrol_as_root(tmp_path, config, enrol)
    assert again.returncode == 0, again.stdout + again.stderr
    assert tomllib.loads(config.read_text())["token"] == machine_key
    assert [
        m["machine_id"] for m in sqlite_org.server.cli_json("enrolment", "list", "--org", sqlite_org.name)["machines"]
    ] == ["desk-1"]

    # After an admin reset the enrolment the kept key is refused: the machine enrols again.
    sqlite_org.server.cli_json("enrolment", "reset", "--org", sqlite_org.name, "desk-1")
    again = run_enrol_as_root(tmp_path, config, enrol)
    assert again.returncode == 0, again.stdout + again.stderr
    renewed = tomllib.loads(config.read_text())["token"]
    assert renewed != machine_key and sqlite_org.report("desk-1", key=renewed).status_code == 200
    contract.unauthorized(sqlite_org.report("desk-1", key=machine_key))

    # Another server (or machine id) in the configuration: the old key is not used there.
    config.write_text(config.read_text().replace('machine_id = "desk-1"', 'machine_id = "desk-9"'))
    again = run_enrol_as_root(tmp_path, config, enrol)
    assert again.returncode == 0, again.stdout + again.stderr
    moved = tomllib.loads(config.read_text())["token"]
    assert moved != renewed and sqlite_org.report("desk-9", key=moved).status_code == 200


def test_enrol_as_root_that_fails_changes_nothing(tmp_path, sqlite_org):
    revoked = sqlite_org.server.make_key(sqlite_org.name, "enroll")
    sqlite_org.server.cli_json("key", "revoke", "--org", sqlite_org.name, str(revoked["key_id"]))
    config = tmp_path / "etc" / "agent.toml"
    config.parent.mkdir()
    config.write_text(f'server = "{sqlite_org.server.url}"\nenroll_token = "{revoked["api_key"]}"\n')
    config.chmod(0o600)
    before = config.read_bytes()
    done = run_enrol_as_root(tmp_path, config, revoked["api_key"])
    assert done.returncode == 1 and "could not enrol this machine" in done.stdout, done.stdout
    assert config.read_bytes() == before and config.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in config.parent.iterdir()) == ["agent.toml"]
    assert sqlite_org.machine_ids() == []


# --------------------------------------------------------------------------------------------
# Linux: the .deb


def test_linux_package_writes_the_file_the_agent_reads(linux_config):
    assert linux_config == "/etc/xdg/dashfleet/agent.toml"
    assert shell_assignment(LINUX / "debian" / "postinst", "CONFIG") == linux_config
    postrm = (LINUX / "debian" / "postrm").read_text()
    assert f"rm -f {linux_config}" in postrm, "purge must remove the config file"
    assert f"rmdir {PurePosixPath(linux_config).parent}" in postrm


def test_linux_desktop_sessions_read_the_package_config(monkeypatch, linux_config):
    entry = configparser.ConfigParser(interpolation=None)
    entry.read(LINUX / "dashfleet-agent.desktop")
    exec_line = shlex.split(entry["Desktop Entry"]["Exec"])
    assert exec_line == ["/opt/dashfleet-agent/session-autostart"]
    assert '"$ROOT/opt/dashfleet-agent/session-autostart"' in (LINUX / "build-deb.sh").read_text()
    wrapper = (LINUX / "session-autostart").read_text()
    assert 'exec /opt/dashfleet-agent/dashfleet-agent "$@"' in wrapper
    # GNOME/Ubuntu sessions put their own folder first in XDG_CONFIG_DIRS: the package's file
    # must still be one the agent reads there.
    monkeypatch.setenv("XDG_CONFIG_DIRS", "/etc/xdg/xdg-ubuntu:/etc/xdg")
    assert Path(linux_config) in agent_config.config_search_path()


def test_linux_service_reads_the_package_config_and_writes_its_state_folder(monkeypatch, linux_config):
    unit = configparser.ConfigParser(interpolation=None, strict=False)
    unit.optionxform = str
    unit.read(LINUX / "dashfleet-agent.service")
    service = unit["Service"]
    assert unit["Unit"]["ConditionPathExists"] == linux_config
    credential, source = service["LoadCredential"].split(":", 1)
    assert source == linux_config
    argv = shlex.split(service["ExecStart"])
    assert argv[0] == "/usr/bin/dashfleet-agent"
    assert f"${{CREDENTIALS_DIRECTORY}}/{credential}" in argv and "--no-tray" in argv
    agent_accepts(argv[1:])
    # The agent's log and queue land in the one folder systemd lets the service write.
    environment = dict(item.split("=", 1) for item in shlex.split(service["Environment"]))
    monkeypatch.setenv("XDG_STATE_HOME", environment["XDG_STATE_HOME"])
    state_directory = Path("/var/lib") / service["StateDirectory"]
    assert log_dir().is_relative_to(state_directory)
    assert Path(platformdirs.user_state_dir(agent_config.APP_NAME, appauthor=False)) == state_directory
    assert service["DynamicUser"] == "yes" and unit["Install"]["WantedBy"] == "multi-user.target"


def test_linux_debconf_questions_exist():
    templates = set(re.findall(r"^Template: (\S+)$", (LINUX / "debian" / "templates").read_text(), re.MULTILINE))
    used = set()
    for script in ("config", "postinst"):
        used |= set(re.findall(r"db_\w+ (dashfleet-agent/\w+)", (LINUX / "debian" / script).read_text()))
    assert used and used <= templates, f"questions without a template: {used - templates}"
    assert templates == {
        "dashfleet-agent/server",
        "dashfleet-agent/enroll_token",
        "dashfleet-agent/token",
        "dashfleet-agent/mode",
        "dashfleet-agent/allow_http",
    }


# --------------------------------------------------------------------------------------------
# Windows: Inno Setup


def iss_defines() -> dict[str, str]:
    return dict(re.findall(r'^\s*#define (\w+) "([^"]*)"', ISS.read_text(), re.MULTILINE))


def test_windows_installer_writes_the_file_the_agent_reads(windows_config):
    defines, text = iss_defines(), ISS.read_text()
    assert windows_config == PureWindowsPath(r"C:\ProgramData\dashfleet\agent.toml")
    config_dir = re.search(r"ExpandConstant\('(\{commonappdata\}\\\{#ConfigDirName\})'\)", text).group(1)
    config_dir = config_dir.replace("{#ConfigDirName}", defines["ConfigDirName"])
    for constant, folder in INNO_CONSTANTS.items():
        config_dir = config_dir.replace(constant, folder)
    assert PureWindowsPath(config_dir) / defines["ConfigFileName"] == windows_config
    assert defines["ConfigFileName"] == agent_config.CONFIG_FILE_NAME


def test_windows_installer_parameters_and_programs():
    defines, text = iss_defines(), ISS.read_text()
    for parameter in ("{param:SERVER|}", "{param:ENROLLTOKENFILE|}", "{param:TOKEN|}", "{param:PURGE|0}"):
        assert parameter in text
    # The programs the installer starts are the ones the PyInstaller spec builds on Windows.
    assert defines["ConsoleExe"] == f"{spec_name()}.exe"
    assert defines["TrayExe"] == f"{spec_name()}-tray.exe"
    assert 'programs.append(program(NAME + "-tray", console=False))' in SPEC.read_text()
    assert re.search(r'#define BundleDir RepoRoot \+ "\\dist\\' + re.escape(spec_name()) + '"', text)
    # Every user's sign-in starts the tray program; the uninstaller stops both.
    assert re.search(r'Name: "\{commonstartup\}\\\{#AppName\}"; Filename: "\{app\}\\\{#TrayExe\}"', text)
    assert "/F /IM {#TrayExe}" in text and "/F /IM {#ConsoleExe}" in text


def iss_code() -> str:
    return ISS.read_text().split("[Code]", 1)[1]


def pascal_routine(name: str) -> str:
    """One function or procedure of the [Code] section, header to its final `end;`."""
    code = iss_code()
    start = re.search(rf"^(function|procedure) {name}\b", code, re.MULTILINE).start()
    following = re.search(r"^(function|procedure) ", code[start + 1 :], re.MULTILINE)
    return code[start : start + 1 + following.start()] if following else code[start:]


def test_windows_setup_takes_keys_from_files_only_and_never_logs_them():
    """Setup's log records its command line: no key may be on it. Statically checked: the script
    cannot be compiled or run here (docs/install-agent.md says what was not run on Windows)."""
    code = iss_code()
    # The key is read from files (/ENROLLTOKENFILE=, /TOKENFILE=) or the wizard's password box ...
    assert "{param:ENROLLTOKENFILE|}" in code and "{param:TOKENFILE|}" in code
    assert "KeyFromFile(KeyFile, Token)" in code
    assert re.search(r"KeyPage\.Add\('Enrol key:', True\)", code), "the key's box must be a password box"
    assert "Token := Trim(KeyPage.Values[1])" in code
    # ... and /TOKEN= (a key on the command line) is refused, never used as a value.
    assert re.search(r"if ExpandConstant\('\{param:TOKEN\|\}'\) <> '' then\s+Problem :=", code)
    assert not re.search(r"Token\s*:=[^;]*param:TOKEN\|", code)
    # Nothing logged or shown names the key; only WriteConfig writes it, into agent.toml.
    for call in re.findall(r"(?:Log|MsgBox|SuppressibleMsgBox|RaiseException)\((.*?)\);", code, re.DOTALL):
        assert "Token" not in call and "Values[1]" not in call, call
    uses = [line.strip() for line in code.splitlines() if re.search(r"\bToken\b", line)]
    writes = [line for line in uses if "TomlString(Token)" in line]
    assert len(writes) == 2 and all(line.startswith("Lines[2] :=") for line in writes), writes
    assert "SetupLogging=yes" in ISS.read_text()


def test_windows_setup_refuses_plain_http_unless_allowed():
    problem = pascal_routine("ParameterProblem")
    assert "IsPlainHttp(Server) and not AllowHttp" in problem and "/ALLOWHTTP=1" in problem
    assert "AllowHttp := ExpandConstant('{param:ALLOWHTTP|0}') = '1'" in pascal_routine("InitializeSetup")
    # Interactively, the person confirms http:// (default button: No).
    page = pascal_routine("NextButtonClick")
    assert "IsPlainHttp(Server)" in page and "MB_DEFBUTTON2" in page and "ParameterProblem()" in page
    # The page is asked only when nothing configures the agent already.
    assert "(Server <> '') or FileExists(ConfigFile())" in pascal_routine("ShouldSkipPage")


SECURE_DIR = WINDOWS / "secure-config-dir.ps1"


def test_windows_setup_secures_the_config_folder_before_anything_is_written():
    prepare = pascal_routine("PrepareToInstall")
    assert "ExtractTemporaryFile('secure-config-dir.ps1')" in prepare
    assert "-File \"' + ExpandConstant('{tmp}\\secure-config-dir.ps1')" in prepare
    assert "-Path \"' + ConfigDir()" in prepare
    for code in ("ResultCode = 2", "ResultCode = 3", "ResultCode <> 0"):
        assert code in prepare
    # The helper is in Setup but never installed; nothing else sets the folder's ACL afterwards.
    text = ISS.read_text()
    assert re.search(r'Source: "\{#RepoRoot\}\\installers\\windows\\secure-config-dir\.ps1"; Flags: dontcopy', text)
    assert "icacls" not in text


def test_the_folder_helper_parses_and_grants_what_the_docs_say():
    script = SECURE_DIR.read_text()
    assert_powershell_parses(script)
    # SYSTEM and Administrators full, Users read and execute, nothing inherited, owner Administrators.
    assert "'S-1-5-18'" in script and "'S-1-5-32-544'" in script and "'S-1-5-32-545'" in script
    assert "@(@($system, 'FullControl'), @($admins, 'FullControl'), @($users, 'ReadAndExecute'))" in script
    assert "$acl.SetAccessRuleProtection($true, $false)" in script and "$acl.SetOwner($admins)" in script
    # An existing folder (and what it holds) must be SYSTEM's or the Administrators', and no link.
    assert "$trusted -notcontains $owner" in script and "exit 2" in script
    assert "[IO.FileAttributes]::ReparsePoint" in script and "exit 3" in script
    assert "Get-ChildItem -LiteralPath $Path -Force -Recurse" in script
    # A new folder is created with its ACL (no moment with ProgramData's inherited one).
    assert "[IO.FileSystemAclExtensions]::Create($info, $acl)" in script and "$info.Create($acl)" in script
    assert script.index("Set-Acl") > script.index("exit 3"), "nothing changes before the checks"


def test_the_windows_install_script_hands_the_key_to_setup_in_a_file():
    from admin.services import install_scripts
    from admin.services.downloads import Package

    key = "api_" + "q" * 43
    packages = [Package("dashfleet-agent-setup-1.0.0.exe", "windows", "1.0.0", "any", 10, "d" * 64)]
    for server in ("https://fleet.example.com", "http://fleet.example.com"):
        script = install_scripts.powershell_script(server=server, enroll_key=key, packages=packages)
        strings = assert_powershell_parses(script)
        assert script.count(key) == 1 and f"'{key}'" in strings  # once: the assignment
        assert script.count("$EnrollKey") == 2  # assigned, then written to the key file
        assert "[IO.File]::WriteAllText($keyFile, $EnrollKey" in script
        assert '"/ENROLLTOKENFILE=`"$keyFile`""' in script and '"/SERVER=$Server"' in script
        code = [line for line in script.split("& {", 1)[1].splitlines() if not line.strip().startswith("#")]
        assert "agent.toml" not in "\n".join(code), "the setup writes agent.toml, not this script"
        assert "if ($Server -like 'http://*' -and -not $allowHttp)" in script
        assert script.index("-not $allowHttp") < script.index("Invoke-WebRequest -UseBasicParsing"), (
            "refused before any download"
        )
        assert "$arguments += '/ALLOWHTTP=1'" in script


# --------------------------------------------------------------------------------------------
# macOS: pkgbuild + LaunchAgent


def test_macos_package_writes_the_file_the_agent_reads(macos_config):
    assert macos_config == "/Library/Application Support/dashfleet/agent.toml"
    postinstall = MACOS / "scripts" / "postinstall"
    assert shell_assignment(postinstall, "CONFIG") == macos_config
    uninstall = (MACOS / "uninstall.sh").read_text()
    assert f'CONFIG_DIR="{PurePosixPath(macos_config).parent}"' in uninstall
    # postinstall sources the shared writer, which the build puts beside it.
    assert '. "$(dirname "$0")/agent-config.sh"' in postinstall.read_text()
    assert 'installers/shared/agent-config.sh "$SCRIPTS/agent-config.sh"' in (MACOS / "build-pkg.sh").read_text()


def test_macos_launch_agent_starts_the_built_app():
    with (MACOS / "com.dashfleet.agent.plist").open("rb") as handle:
        plist = plistlib.load(handle)
    build = (MACOS / "build-pkg.sh").read_text()
    identifier = shell_assignment(MACOS / "build-pkg.sh", "IDENTIFIER")
    assert plist["Label"] == identifier == shell_assignment(MACOS / "scripts" / "postinstall", "LABEL")
    assert '"$ROOT/Library/LaunchAgents/$IDENTIFIER.plist"' in build
    app_name = re.search(r'name="([^"]+\.app)"', SPEC.read_text()).group(1)
    program = f"/Applications/{app_name}/Contents/MacOS/{spec_name()}"
    assert plist["ProgramArguments"] == [program]
    assert shell_assignment(MACOS / "scripts" / "postinstall", "AGENT") == "$APP/Contents/MacOS/dashfleet-agent"
    assert shell_assignment(MACOS / "scripts" / "postinstall", "APP") == f"/Applications/{app_name}"
    agent_accepts(plist["ProgramArguments"][1:])
    assert plist["RunAtLoad"] is True and plist["LimitLoadToSessionType"] == "Aqua"


# --------------------------------------------------------------------------------------------
# All of them


SHELL_SCRIPTS = [LINUX / "debian" / name for name in ("config", "postinst", "prerm", "postrm")] + [
    LINUX / "session-autostart",
    SHARED_WRITER,
    MACOS / "scripts" / "preinstall",
    MACOS / "scripts" / "postinstall",
    MACOS / "uninstall.sh",
]
BASH_SCRIPTS = [LINUX / "build-deb.sh", MACOS / "build-pkg.sh", INSTALLERS / "pyinstaller" / "build.sh"]


@pytest.mark.parametrize("script", SHELL_SCRIPTS + BASH_SCRIPTS, ids=lambda p: str(p.relative_to(INSTALLERS)))
def test_scripts_parse(script):
    shell = "bash" if script in BASH_SCRIPTS else "sh"
    done = subprocess.run([shell, "-n", str(script)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    if script != SHARED_WRITER:  # sourced, not run
        assert os.access(script, os.X_OK), f"{script} is not executable"


@pytest.mark.parametrize("script", SHELL_SCRIPTS, ids=lambda p: str(p.relative_to(INSTALLERS)))
def test_shell_scripts_pass_shellcheck(script, tmp_path):
    # SC1091: the sourced agent-config.sh is checked on its own.
    assert_shell_script_is_clean(script.read_text(), tmp_path, allow=("SC1091",))


def test_install_docs_name_the_paths_the_agent_reads(linux_config, windows_config, macos_config):
    if not DOCS.exists():
        pytest.fail("docs/install-agent.md is missing")
    docs = DOCS.read_text()
    for path in (linux_config, str(windows_config), macos_config):
        assert path in docs, f"docs/install-agent.md does not name {path}"
