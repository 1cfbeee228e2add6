"""`dashfleet-admin` (python -m admin) as a user runs it: JSON on stdout, clean errors, any order.

Tests that only need some organisation to exist share one installation (`install`, with the
organisation `acme`); those about first runs get a fresh one (`admin_cli`, an empty directory).
"""

import os
import re
import select
import socket
import subprocess
import sys
import time

import httpx
import pytest

API_KEY = re.compile(r"api_[A-Za-z0-9_-]{32,}")
PASSWORD = {"DASHFLEET_PASSWORD": "correct horse battery staple"}
# What must never reach a user's terminal: a traceback or a raw database error.
LEAKS = ("Traceback", "no such table", "UndefinedTable", "sqlalchemy.", "psycopg.")


def assert_clean_failure(done, *words: str) -> None:
    """Non-zero, nothing on stdout, and a clear message on stderr that mentions `words`."""
    assert done.returncode != 0, f"succeeded but should not have:\n{done.stdout}"
    assert done.stdout.strip() == "", f"printed a result despite failing:\n{done.stdout}"
    message = done.stderr.strip()
    assert message, "failed without saying why"
    for leak in LEAKS:
        assert leak not in message, f"stderr leaks {leak!r}:\n{message}"
    for word in words:
        assert word.lower() in message.lower(), f"stderr does not mention {word!r}:\n{message}"


@pytest.fixture(scope="module")
def install(module_server_factory):
    """One installation (never started) for this module's tests that need no fresh one."""
    return module_server_factory.prepare()


@pytest.fixture(scope="module")
def acme(install) -> dict:
    """The organisation `acme` in `install`: what `org create` printed."""
    return install.cli_json("org", "create", "acme")


def test_org_create_prints_the_contract_json(admin_cli):
    created = admin_cli.cli_json("org", "create", "Acme Corp")
    assert set(created) >= {"org_id", "name", "api_key", "key_id"}
    assert created["name"] == "Acme Corp"
    assert API_KEY.fullmatch(created["api_key"]), created["api_key"]
    assert created["org_id"] is not None and created["key_id"] is not None
    # The default database lives under ./data/ of the working directory.
    assert any((admin_cli.workdir / "data").iterdir())


def test_org_names_are_unique(install):
    first = install.cli_json("org", "create", "taken")
    assert_clean_failure(install.cli("org", "create", "taken"), "taken")
    # The first one is intact: keys can still be made for it.
    assert install.make_key("taken", "read")["scopes"] == ["read"]
    assert first["api_key"] != install.make_key("taken", "agent")["api_key"]


@pytest.mark.parametrize("name", ["", "   ", "\t"], ids=["empty", "spaces", "tab"])
def test_org_create_refuses_blank_names(install, name):
    assert_clean_failure(install.cli("org", "create", name))


def test_key_create_with_scopes(install, acme):
    agent = install.make_key("acme", "agent")
    both = install.make_key("acme", "agent", "read")
    assert agent["scopes"] == ["agent"]
    assert sorted(both["scopes"]) == ["agent", "read"]
    keys = {acme["api_key"], agent["api_key"], both["api_key"]}
    assert len(keys) == 3 and all(API_KEY.fullmatch(key) for key in keys)
    assert len({acme["key_id"], agent["key_id"], both["key_id"]}) == 3


def test_key_create_refuses_unknown_org_and_scope(install, acme):
    assert_clean_failure(install.cli("key", "create", "--org", "nobody", "--scope", "read"), "nobody")
    assert_clean_failure(install.cli("key", "create", "--org", "acme", "--scope", "root"), "scope")
    assert_clean_failure(install.cli("key", "create", "--scope", "read"), "--org")


def test_key_revoke_refuses_bad_ids(install, acme):
    spare = install.make_key("acme", "read")
    assert_clean_failure(install.cli("key", "revoke", "--org", "acme", "999999"))
    assert_clean_failure(install.cli("key", "revoke", "--org", "acme", "abc"))
    assert_clean_failure(install.cli("key", "revoke", "--org", "nobody", str(spare["key_id"])), "nobody")
    revoked = install.cli("key", "revoke", "--org", "acme", str(spare["key_id"]))
    assert revoked.returncode == 0, revoked.stderr


def test_user_create_with_the_password_from_the_environment(install, acme):
    viewer = install.cli_json("user", "create", "viewer@example.com", "--org", "acme", env=PASSWORD)
    assert set(viewer) >= {"user_id", "email", "org", "role"}
    assert (viewer["email"], viewer["org"], viewer["role"]) == ("viewer@example.com", "acme", "viewer")
    admin = install.cli_json("user", "create", "boss@example.com", "--org", "acme", "--role", "admin", env=PASSWORD)
    assert admin["role"] == "admin" and admin["user_id"] != viewer["user_id"]


def test_user_create_without_password_or_terminal_fails_and_stores_nothing(install, acme):
    assert_clean_failure(install.cli("user", "create", "a@example.com", "--org", "acme"), "password")
    # An empty DASHFLEET_PASSWORD is no password (not a too-short one): it asks for one.
    empty = install.cli("user", "create", "a@example.com", "--org", "acme", env={"DASHFLEET_PASSWORD": ""})
    assert_clean_failure(empty, "set DASHFLEET_PASSWORD or run this command in a terminal")
    # Nothing was stored: the same address can be created now (a duplicate would be refused).
    install.cli_json("user", "create", "a@example.com", "--org", "acme", env=PASSWORD)
    assert_clean_failure(install.cli("user", "create", "a@example.com", "--org", "acme", env=PASSWORD))


@pytest.mark.parametrize(
    "args,mentions",
    [
        (["not-an-email", "--org", "acme"], "email"),
        (["<b>x</b>@example.com", "--org", "acme"], "e-mail"),
        (["a b@example.com", "--org", "acme"], "e-mail"),
        (["a@example.com", "--org", "nobody"], "nobody"),
        (["a@example.com", "--org", "acme", "--role", "root"], "role"),
        (["a@example.com"], "--org"),
    ],
    ids=["bad email", "markup in email", "space in email", "unknown org", "bad role", "no org"],
)
def test_user_create_refuses_bad_input(install, acme, args, mentions):
    assert_clean_failure(install.cli("user", "create", *args, env=PASSWORD), mentions)


def run_in_terminal(server, args: list[str], answer: str, timeout: float = 60) -> tuple[int, str]:
    """Runs `python -m admin ARGS` on a pseudo-terminal, answering every prompt with `answer`."""
    env = {k: v for k, v in server.env.items() if k != "DASHFLEET_PASSWORD"}
    pid, fd = os.forkpty()
    if pid == 0:  # the child: becomes the command, with the terminal as its controlling tty
        os.chdir(server.workdir)
        os.execve(sys.executable, [sys.executable, "-m", "admin", *args], env)
    output, deadline = b"", time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if not select.select([fd], [], [], 0.2)[0]:
                continue
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # EIO: the command has exited and closed the terminal
                break
            if not chunk:
                break
            output += chunk
            if chunk.rstrip().endswith(b":"):
                os.write(fd, answer.encode() + b"\n")
    finally:
        os.close(fd)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), output.decode(errors="replace")


def test_user_create_prompts_for_the_password_on_a_terminal(install, acme):
    status, output = run_in_terminal(
        install, ["user", "create", "t@example.com", "--org", "acme"], answer="a long enough password 123"
    )
    assert status == 0, output
    assert "password" in output.lower()
    assert "a long enough password 123" not in output, "the password was echoed"
    assert '"viewer"' in output


@pytest.mark.parametrize(
    "first",
    [
        ["org", "create", "first"],
        ["key", "create", "--org", "first", "--scope", "read"],
        ["key", "revoke", "--org", "first", "1"],
        ["user", "create", "u@example.com", "--org", "first"],
    ],
    ids=["org create", "key create", "key revoke", "user create"],
)
def test_every_command_works_first_on_a_fresh_install(server_factory, backend, first):
    fresh = server_factory.prepare(backend)
    done = fresh.cli(*first, env=PASSWORD)
    if first[:2] == ["org", "create"]:
        assert done.returncode == 0, done.stderr
    else:
        # No organisation exists yet: a clear error, not a missing table.
        assert_clean_failure(done, "first")
    # The database is there and current: the next step of the usual sequence works.
    if first[:2] == ["org", "create"]:
        fresh.make_key("first", "read")
    else:
        fresh.cli_json("org", "create", "first")


def test_serve_migrates_a_fresh_install_and_accepts_cli_keys(server_factory, backend):
    fresh = server_factory.prepare(backend)
    _, api_key = fresh.make_org("acme")
    fresh.start()
    resp = httpx.get(f"{fresh.url}/api/fleet", headers={"Authorization": f"Bearer {api_key}"})
    assert resp.status_code == 200 and resp.json()["count"] == 0


@pytest.mark.parametrize(
    "args",
    [[], ["frobnicate"], ["org"], ["org", "create"], ["key", "revoke", "--org", "x"]],
    ids=["nothing", "unknown command", "no action", "no name", "no key id"],
)
def test_incomplete_or_unknown_commands_fail_cleanly(install, args):
    done = install.cli(*args)
    assert done.returncode != 0
    assert "Traceback" not in done.stderr and done.stderr.strip()


@pytest.mark.parametrize(
    "setting,value,mentions",
    [
        ("DASHFLEET_FLEET_TTL_SECONDS", "a day", "fleet_ttl_seconds"),
        ("DASHFLEET_MAX_BODY_BYTES", "-5", "max_body_bytes"),
        ("DASHFLEET_DATABASE_URL", "nonsense", "database"),
        ("DASHFLEET_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:1/nowhere", "database"),
        (
            "DASHFLEET_OFFLINE_AFTER_SECONDS",
            "100000",
            "invalid settings: dashfleet_offline_after_seconds (100000) must be below",
        ),
        # 1,000 hours of raw samples, but 5-minute buckets for 14 days only: tiers must not shrink.
        ("DASHFLEET_HISTORY_RAW_RETENTION_HOURS", "1000", "dashfleet_history_raw_retention_hours (1000 h) <="),
    ],
    ids=[
        "ttl not a number",
        "negative body limit",
        "url not a url",
        "database unreachable",
        "offline after ttl",
        "history tiers shrink",
    ],
)
@pytest.mark.parametrize("command", ["org create", "serve"])
def test_bad_settings_are_clean_errors(install, setting, value, mentions, command):
    with socket.socket() as sock:  # a port nobody listens on, should serve start after all
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    args = ["org", "create", f"never-{port}"] if command == "org create" else ["serve", "--port", str(port)]
    try:
        done = install.cli(*args, env={setting: value}, timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail(f"`{command}` ran on with {setting}={value!r} instead of refusing it")
    assert done.returncode != 0
    assert "Traceback" not in done.stderr, done.stderr
    assert mentions in done.stderr.lower(), f"the error does not say what is wrong:\n{done.stderr}"


def test_demo_on_a_busy_port_is_a_clean_error_that_makes_nothing(install):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = install.cli("demo", "--port", str(port), timeout=30)
    assert_clean_failure(done, f"port {port}", "in use", "--port")
    # Nothing was prepared: no demo organisation to make keys for.
    assert_clean_failure(install.cli("key", "create", "--org", "Demo", "--scope", "read"), "Demo")


def test_user_set_password_changes_it_and_refuses_bad_input(install, acme):
    """Finding 16: a password changed without removing the user (its sessions end: tests/admin/ui)."""
    install.cli_json("user", "create", "pw@example.com", "--org", "acme", env=PASSWORD)
    new = {"DASHFLEET_PASSWORD": "a whole new password"}
    changed = install.cli_json("user", "set-password", "PW@example.com", env=new)
    assert (changed["email"], changed["org"], changed["sessions_ended"]) == ("pw@example.com", "acme", True)
    check = (
        "from admin.core.config import Settings; from admin.core.db import make_engine;"
        "from admin.services.accounts import AccountService;"
        "a = AccountService(make_engine(Settings()));"
        "print(a.authenticate_user('pw@example.com', 'a whole new password') is not None,"
        " a.authenticate_user('pw@example.com', 'correct horse battery staple') is None)"
    )
    done = subprocess.run(
        [sys.executable, "-c", check], cwd=install.workdir, env=install.env, capture_output=True, text=True
    )
    assert done.stdout.split() == ["True", "True"], done.stderr
    assert_clean_failure(
        install.cli("user", "set-password", "pw@example.com", env={"DASHFLEET_PASSWORD": "short"}), "8"
    )
    assert_clean_failure(install.cli("user", "set-password", "nobody@example.com", env=new), "no user")
    assert_clean_failure(install.cli("user", "set-password", "pw@example.com", "--org", "nobody", env=new), "nobody")
    assert_clean_failure(install.cli("user", "set-password", "pw@example.com"), "DASHFLEET_PASSWORD")
    # The same address in a second organisation: which one must be said.
    install.cli_json("org", "create", "beta")
    install.cli_json("user", "create", "pw@example.com", "--org", "beta", env=PASSWORD)
    assert_clean_failure(install.cli("user", "set-password", "pw@example.com", env=new), "--org")
    assert install.cli_json("user", "set-password", "pw@example.com", "--org", "beta", env=new)["org"] == "beta"


def test_the_installed_program_itself_runs_and_a_closed_pipe_is_no_traceback(install, acme):
    """The fixtures fork their commands from a process that imported the CLI once
    (tests/helpers/cli_zygote.py); this runs the installed `dashfleet-admin` as IT does, including
    into a reader that leaves early (`dashfleet-admin key list --org acme | head -1`)."""
    program = os.path.join(os.path.dirname(sys.executable), "dashfleet-admin")
    args = [program, "key", "list", "--org", "acme"]
    done = subprocess.run(args, cwd=install.workdir, env=install.env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert f'"key_id": {acme["key_id"]}' in done.stdout, done.stdout
    reader_gone = subprocess.Popen(
        args, cwd=install.workdir, env=install.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    reader_gone.stdout.close()  # as `head` does once it has its line
    stderr = reader_gone.stderr.read()
    assert reader_gone.wait(timeout=60) != 0
    assert "Traceback" not in stderr and "BrokenPipeError" not in stderr, stderr


def test_a_variable_that_is_not_a_setting_is_named_not_silently_ignored(install, acme):
    """pydantic-settings ignores unknown DASHFLEET_* variables: a typo, or a setting that was replaced,
    would leave the server on its default without a word. The command still runs; stderr says which."""
    env = {"DASHFLEET_FLEET_TLL_SECONDS": "60", "DASHFLEET_HISTORY_RETENTION_DAYS": "30", "DASHFLEET_SERVER": "x"}
    done = install.cli("key", "list", "--org", "acme", env=env)
    assert done.returncode == 0, done.stderr
    assert f'"key_id": {acme["key_id"]}' in done.stdout
    warnings = done.stderr.strip().splitlines()
    assert len(warnings) == 2, done.stderr  # DASHFLEET_SERVER is the agent's: not the server's business
    assert "DASHFLEET_FLEET_TLL_SECONDS is not a setting" in warnings[0]
    assert "did you mean DASHFLEET_FLEET_TTL_SECONDS?" in warnings[0]
    assert "DASHFLEET_HISTORY_RETENTION_DAYS is no longer a setting" in warnings[1]
    assert "DASHFLEET_HISTORY_RAW_RETENTION_HOURS" in warnings[1]


def test_no_agent_variable_is_taken_for_a_mistyped_server_setting():
    """A machine may run the agent and the server (the demo does): the agent's DASHFLEET_* variables
    must not make every dashfleet-admin command warn about them."""
    from admin.core.config import NOT_SETTINGS, unknown_setting_warnings
    from desktop_agent.config import ENV_PREFIX, KEYS

    agent_variables = {ENV_PREFIX + key.upper() for key in KEYS} | {ENV_PREFIX + "CONFIG"}
    assert agent_variables <= NOT_SETTINGS
    assert unknown_setting_warnings(dict.fromkeys(agent_variables, "x")) == []
