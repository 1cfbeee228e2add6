"""Install links and downloads on a real server: `install-link create|list|revoke`, the scripts
/install/<code>.sh and .ps1 (uses, expiry, revocation, unknown codes), GET /downloads/ with
SHA-256, and the scripts' static checks (sh -n, ShellCheck, a PowerShell parser).

The real installation of the scripts (the .deb through apt as root, the venv into a temporary
prefix) is in tests/installers/test_install_script.py.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from admin.services import install_scripts
from admin.services.downloads import Package
from tests.helpers.api import bearer
from tests.helpers.script_checks import assert_powershell_parses, assert_shell_script_is_clean
from tests.helpers.servers import free_port

VERSION = __import__("common.version", fromlist=["__version__"]).__version__
WHEEL = f"dashfleet-{VERSION}-py3-none-any.whl"
DEB = f"dashfleet-agent_{VERSION}_amd64.deb"
SETUP = f"dashfleet-agent-setup-{VERSION}.exe"
# The shell script writes `enroll_token = "api_..."` into agent.toml; the PowerShell one holds
# `$EnrollKey = 'api_...'` and hands it to the setup in a file.
ENROLL_TOKEN = re.compile(r'enroll_token = \\?"(api_[A-Za-z0-9_-]+)\\?"|\$EnrollKey = \'(api_[A-Za-z0-9_-]+)\'')


@pytest.fixture(scope="module")
def downloads(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("downloads")
    (folder / WHEEL).write_bytes(b"wheel bytes")
    (folder / DEB).write_bytes(b"deb bytes" * 1000)
    (folder / SETUP).write_bytes(b"setup bytes")
    (folder / "dashfleet-0.9.0-py3-none-any.whl").write_bytes(b"an older wheel")
    (folder / "notes.txt").write_text("not a package")
    (folder / ".env").write_text("DASHFLEET_STORAGE_SECRET=never served")
    return folder


@pytest.fixture(scope="module")
def link_server(module_server_factory, downloads):
    port = free_port()
    return module_server_factory(
        port=port,
        public_url=f"http://127.0.0.1:{port}",
        downloads_dir=str(downloads),
        maintenance_interval_seconds=1,
    )


@pytest.fixture
def link_org(link_server):
    return link_server.org()


def create_link(server, org_name: str, *args: str) -> dict:
    return server.cli_json("install-link", "create", "--org", org_name, *args)


def links_of(server, org_name: str) -> list[dict]:
    return server.cli_json("install-link", "list", "--org", org_name)["links"]


def code_of(link: dict) -> str:
    return link["url"].rsplit("/", 1)[1]


def enroll_key_in(script: str) -> str:
    found = ["".join(groups) for groups in ENROLL_TOKEN.findall(script)]
    assert len(found) == 1, "the script must carry exactly one enrol key"
    return found[0]


def expire_in_database(server, link_id: int) -> None:
    """Arrange an expired link without waiting out the 60 s minimum lifetime."""
    with sqlite3.connect(server.workdir / "data" / "dashfleet.db") as db:
        db.execute("UPDATE install_link SET expires_at = ? WHERE id = ?", (time.time() - 1, link_id))


# ---- downloads ---------------------------------------------------------------------------------


def test_downloads_lists_our_packages_with_their_sha256(link_server, downloads):
    listing = link_server.http.get("/downloads/")
    assert listing.status_code == 200
    body = listing.json()
    assert body["version"] == VERSION
    by_name = {p["name"]: p for p in body["data"]}
    assert set(by_name) == {WHEEL, DEB, SETUP, "dashfleet-0.9.0-py3-none-any.whl"}, "only our packages are listed"
    for name, package in by_name.items():
        content = (downloads / name).read_bytes()
        assert package["sha256"] == hashlib.sha256(content).hexdigest()
        assert package["size"] == len(content)
        served = link_server.http.get(package["url"])
        assert served.status_code == 200 and served.content == content
    assert by_name[DEB]["kind"] == "deb" and by_name[DEB]["arch"] == "amd64"
    assert by_name[SETUP]["kind"] == "windows"

    for hidden in ("notes.txt", ".env", "..%2Fdata%2Fdashfleet.db", "dashfleet-1.0.0-py3-none-any.whl.part"):
        resp = link_server.http.get(f"/downloads/{hidden}")
        assert resp.status_code == 404, hidden
        assert b"DASHFLEET" not in resp.content and b"SQLite" not in resp.content


def test_a_changed_package_gets_its_new_sha256(link_server, downloads):
    path = downloads / "dashfleet-0.9.0-py3-none-any.whl"
    path.write_bytes(b"rebuilt, longer than before")
    listed = {p["name"]: p["sha256"] for p in link_server.http.get("/downloads/").json()["data"]}
    assert listed[path.name] == hashlib.sha256(b"rebuilt, longer than before").hexdigest()


# ---- the CLI -----------------------------------------------------------------------------------


def test_create_prints_the_url_commands_expiry_and_uses(link_server, link_org):
    before = time.time()
    link = create_link(link_server, link_org.name)
    assert set(link) == {"link_id", "url", "expires", "uses", "commands"}
    assert link["url"].startswith(f"{link_server.url}/install/")
    assert link["uses"] == 50
    assert before + 86400 - 5 <= link["expires"] <= time.time() + 86400 + 5
    assert set(link["commands"]) == {"linux", "windows", "macos"}
    assert f"{link['url']}.sh" in link["commands"]["linux"]
    # The test server is plain http://: the commands allow it explicitly (the scripts refuse it otherwise).
    assert link["commands"]["linux"].endswith("| sudo env DASHFLEET_ALLOW_HTTP=1 sh")
    assert f"'{link['url']}.ps1'" in link["commands"]["windows"]
    assert "$env:DASHFLEET_ALLOW_HTTP = '1'" in link["commands"]["windows"]
    # The link's enrol key is never printed, and never a key of the organisation's.
    assert "api_" not in str(link["commands"]) and link_org.api_key not in str(link)

    listed = links_of(link_server, link_org.name)
    assert [(entry["link_id"], entry["state"], entry["used"]) for entry in listed] == [(link["link_id"], "live", 0)]
    assert code_of(link) not in str(listed), "the list never shows the codes"

    short = create_link(link_server, link_org.name, "--expires-in", "600", "--uses", "3")
    assert short["uses"] == 3 and short["expires"] <= time.time() + 605


BAD_VALUES = [
    (["--expires-in", "59"], "expires_in must be 60"),
    (["--expires-in", str(31 * 86400)], "expires_in must be 60"),
    (["--uses", "0"], "must be 1 or more"),
    (["--uses", "10001"], "uses must be 1 to 10000"),
    (["--uses", "many"], "not a whole number"),
]


def test_create_refuses_bad_values_and_makes_nothing(link_server, link_org):
    keys_before = link_server.cli_json("key", "list", "--org", link_org.name)["keys"]
    for args, complaint in BAD_VALUES:
        done = link_server.cli("install-link", "create", "--org", link_org.name, *args)
        assert done.returncode != 0, args
        assert complaint in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert links_of(link_server, link_org.name) == []
    assert link_server.cli_json("key", "list", "--org", link_org.name)["keys"] == keys_before


def test_links_need_a_public_url_and_https_beyond_this_machine(admin_cli):
    admin_cli.cli_json("org", "create", "acme")
    done = admin_cli.cli("install-link", "create", "--org", "acme")
    assert done.returncode != 0 and "DASHFLEET_PUBLIC_URL" in done.stderr

    plain = {"DASHFLEET_PUBLIC_URL": "http://fleet.example.com"}
    done = admin_cli.cli("install-link", "create", "--org", "acme", env=plain)
    assert done.returncode != 0 and "https://" in done.stderr and "DASHFLEET_INSTALL_LINKS_ALLOW_HTTP" in done.stderr
    assert admin_cli.cli_json("install-link", "list", "--org", "acme")["links"] == []

    allowed = admin_cli.cli_json(
        "install-link", "create", "--org", "acme", env={**plain, "DASHFLEET_INSTALL_LINKS_ALLOW_HTTP": "true"}
    )
    assert allowed["url"].startswith("http://fleet.example.com/install/")
    secure = admin_cli.cli_json(
        "install-link", "create", "--org", "acme", env={"DASHFLEET_PUBLIC_URL": "https://f.example.com/"}
    )
    assert secure["url"].startswith("https://f.example.com/install/")
    assert "--proto '=https'" in secure["commands"]["linux"], "curl must not follow a redirect to http://"
    assert secure["commands"]["linux"].endswith(".sh' | sudo sh") or secure["commands"]["linux"].endswith(
        ".sh | sudo sh"
    )
    assert "ALLOW_HTTP" not in str(secure["commands"]), "an https:// link needs no allowance"
    assert "DASHFLEET_ALLOW_HTTP=1" in allowed["commands"]["linux"]


def test_another_organisation_cannot_revoke_or_see_a_link(link_server, link_org):
    link = create_link(link_server, link_org.name)
    other = link_server.org()
    done = link_server.cli("install-link", "revoke", "--org", other.name, str(link["link_id"]))
    assert done.returncode != 0 and "no install link" in done.stderr
    assert links_of(link_server, other.name) == []
    assert links_of(link_server, link_org.name)[0]["state"] == "live"


# ---- the scripts -------------------------------------------------------------------------------


def test_a_script_carries_an_enrol_key_of_its_own_and_nothing_else(link_server, link_org):
    link = create_link(link_server, link_org.name)
    resp = link_server.http.get(f"/install/{code_of(link)}.sh")
    assert resp.status_code == 200
    assert resp.headers["cache-control"] == "no-store"
    script = resp.text
    key = enroll_key_in(script)
    assert link_org.api_key not in script
    assert f"SERVER={link_server.url}" in script or f"SERVER='{link_server.url}'" in script
    hashes = {p["name"]: p["sha256"] for p in link_server.http.get("/downloads/").json()["data"]}
    assert f"PKG_NAME={DEB}; PKG_SHA256={hashes[DEB]}" in script
    assert f"PKG_NAME={WHEEL}; PKG_SHA256={hashes[WHEEL]}" in script
    assert "0.9.0" not in script, "only the server's own version is handed out"

    # The key has the enroll scope only: it cannot report, ping or read.
    keys = link_server.cli_json("key", "list", "--org", link_org.name)["keys"]
    [entry] = [k for k in keys if key.startswith(k["prefix"])]
    assert entry["scopes"] == ["enroll"]
    assert link_org.report("would-be-machine", key=key).status_code == 403
    assert link_org.ping("would-be-machine", key=key).status_code == 403
    assert link_server.http.get("/api/fleet", headers=bearer(key)).status_code == 403
    link_org.assert_empty()

    # The same link's PowerShell script carries the same key, and the Windows installer's hash.
    ps1 = link_server.http.get(f"/install/{code_of(link)}.ps1")
    assert ps1.status_code == 200 and enroll_key_in(ps1.text) == key
    assert f"$SetupName = '{SETUP}'" in ps1.text and f"$SetupSha256 = '{hashes[SETUP]}'" in ps1.text


def test_uses_are_counted_per_script_and_a_used_up_link_says_so(link_server, link_org):
    link = create_link(link_server, link_org.name, "--uses", "2")
    code = code_of(link)
    for _ in range(2):  # the page that says what to run uses nothing
        page = link_server.http.get(f"/install/{code}")
        assert page.status_code == 200 and f"{link['url']}.sh" in page.text and "api_" not in page.text
    assert link_server.http.get(f"/install/{code}.sh").status_code == 200
    assert link_server.http.get(f"/install/{code}.ps1").status_code == 200
    [listed] = links_of(link_server, link_org.name)
    assert (listed["used"], listed["state"]) == (2, "used up") and listed["last_used"] is not None

    refused = link_server.http.get(f"/install/{code}.sh")
    assert refused.status_code == 410
    assert "used as many times as it allows" in refused.text and "api_" not in refused.text
    assert link_server.http.get(f"/install/{code}").status_code == 410
    assert links_of(link_server, link_org.name)[0]["used"] == 2, "a refusal uses nothing"


def run_refusal(script: str, tmp_path: Path) -> subprocess.CompletedProcess:
    path = tmp_path / "refused.sh"
    path.write_text(script)
    return subprocess.run(["sh", str(path)], capture_output=True, text=True, timeout=30)


def test_a_revoked_link_serves_a_script_that_refuses_and_its_key_is_revoked(link_server, link_org, tmp_path):
    link = create_link(link_server, link_org.name)
    key = enroll_key_in(link_server.http.get(f"/install/{code_of(link)}.sh").text)
    assert link_server.http.get("/api/fleet", headers=bearer(key)).status_code == 403  # valid, wrong scope

    revoked = link_server.cli_json("install-link", "revoke", "--org", link_org.name, str(link["link_id"]))
    assert revoked["revoked"] is True
    assert links_of(link_server, link_org.name)[0]["state"] == "revoked"
    assert link_server.http.get("/api/fleet", headers=bearer(key)).status_code == 401, "the enrol key goes too"

    for suffix in (".sh", ".ps1"):
        resp = link_server.http.get(f"/install/{code_of(link)}{suffix}")
        assert resp.status_code == 410 and "was revoked" in resp.text and "api_" not in resp.text
    done = run_refusal(link_server.http.get(f"/install/{code_of(link)}.sh").text, tmp_path)
    assert done.returncode == 1
    assert "was revoked" in done.stderr and "nothing was installed" in done.stderr


def test_an_expired_link_refuses_and_its_key_is_revoked_by_the_maintenance_job(link_server, link_org, tmp_path):
    link = create_link(link_server, link_org.name)
    key = enroll_key_in(link_server.http.get(f"/install/{code_of(link)}.sh").text)
    expire_in_database(link_server, link["link_id"])

    resp = link_server.http.get(f"/install/{code_of(link)}.sh")
    assert resp.status_code == 410 and "has expired" in resp.text
    done = run_refusal(resp.text, tmp_path)
    assert done.returncode == 1 and "has expired" in done.stderr
    assert links_of(link_server, link_org.name)[0]["state"] == "expired"
    deadline = time.monotonic() + 10  # the maintenance job runs every second here
    while link_server.http.get("/api/fleet", headers=bearer(key)).status_code != 401:
        assert time.monotonic() < deadline, "the expired link's enrol key was not revoked"
        time.sleep(0.3)


@pytest.mark.parametrize("code", ["x" * 32, "short", "a" * 65, "%27%3Bls"])
def test_an_unknown_link_answers_404_with_a_script_that_says_so(link_server, code):
    resp = link_server.http.get(f"/install/{code}.sh")
    assert resp.status_code == 404 and "does not exist" in resp.text
    assert link_server.http.get(f"/install/{code}.ps1").status_code == 404


def test_the_install_routes_are_in_the_openapi_schema(link_server):
    paths = link_server.openapi()["paths"]
    for path in ("/downloads/", "/downloads/{name}", "/install/{code}.sh", "/install/{code}.ps1", "/install/{code}"):
        assert "get" in paths[path], path


# ---- static checks of what the templates make --------------------------------------------------

HOSTILE_URL = "https://fleet.example.com/x'$(touch {canary})`touch {canary}`\"; touch {canary} #"
PACKAGES = [
    Package(DEB, "deb", VERSION, "amd64", 10, "a" * 64),
    Package(WHEEL, "wheel", VERSION, "any", 10, "b" * 64),
    Package(f"dashfleet-agent-{VERSION}.pkg", "macos", VERSION, "any", 10, "c" * 64),
    Package(SETUP, "windows", VERSION, "any", 10, "d" * 64),
]


@pytest.mark.parametrize("packages", [PACKAGES, []], ids=["all-packages", "none"])
def test_scripts_pass_sh_n_shellcheck_and_the_powershell_parser(packages, tmp_path):
    key = "api_" + "k" * 43
    shell = install_scripts.shell_script(server="https://fleet.example.com", enroll_key=key, packages=packages)
    assert_shell_script_is_clean(shell, tmp_path)
    ps1 = install_scripts.powershell_script(server="https://fleet.example.com", enroll_key=key, packages=packages)
    assert_powershell_parses(ps1)
    for reason in install_scripts.REFUSALS:
        assert_shell_script_is_clean(install_scripts.refusal_script(reason, powershell=False), tmp_path)
        assert_powershell_parses(install_scripts.refusal_script(reason, powershell=True))


def test_every_value_is_quoted_a_hostile_url_stays_data(tmp_path):
    """A value with quotes, $(...), backticks and ; reaches the script as one string, runs nothing."""
    canary = tmp_path / "canary"
    url = HOSTILE_URL.format(canary=canary)
    shell = install_scripts.shell_script(server=url, enroll_key="api_" + "k" * 43, packages=PACKAGES)
    # SC2016 says "$(...) does not expand in single quotes": exactly what quoting is for.
    assert_shell_script_is_clean(shell, tmp_path, allow=("SC2016",))
    # The assignments, run by a real sh, give back exactly the values.
    body = shell.split("dashfleet_install() {\n", 1)[1].split("    # Tests and packagers", 1)[0]
    probe = tmp_path / "probe.sh"
    probe.write_text(body + 'printf "%s\\n" "$SERVER" "$CONFIG_LINES"\n')
    done = subprocess.run(["sh", str(probe)], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == url
    assert done.stdout.splitlines()[1] == 'server = "' + url.replace('"', '\\"') + '"'
    assert not canary.exists(), "a value was run as a command"

    ps1 = install_scripts.powershell_script(
        server=url + "; Remove-Item C:\\", enroll_key="api_" + "k" * 43, packages=PACKAGES
    )
    strings = assert_powershell_parses(ps1)
    assert install_scripts.ps_quote(url + "; Remove-Item C:\\") in strings


@pytest.mark.skipif(not shutil.which("shellcheck"), reason="shellcheck is missing (make sysdeps installs it)")
def test_the_server_build_script_passes_shellcheck():
    root = Path(__file__).resolve().parents[3]
    done = subprocess.run(
        ["shellcheck", str(root / "installers/server/build-downloads.sh")], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout
