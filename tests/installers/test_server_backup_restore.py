"""`dashfleet-admin backup FILE` / `restore FILE` end to end, as an operator runs them.

Machines report to a real server; the backup is taken while it serves; the database is wiped;
restore brings back the same fleet (GET /api/fleet, history, keys). A bad file or a refused
confirmation gets a clear error and changes nothing.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest

TRICKY_ID = "<b>\"asset' 42</b> ; DROP TABLE machine; --"


def wipe(server) -> None:
    """An empty database: what a lost disk or a dropped database leaves behind."""
    url = server.env.get("DASHFLEET_DATABASE_URL")
    if url:
        import psycopg

        with psycopg.connect(url.replace("+psycopg", ""), autocommit=True) as conn:
            conn.execute("DROP SCHEMA public CASCADE")
            conn.execute("CREATE SCHEMA public")
    else:
        for path in (server.workdir / "data").glob("dashfleet.db*"):
            path.unlink()


def snapshot(org, machine_ids: list[str]) -> dict:
    """What users see: the listing, and each machine with its history."""
    machines = {}
    for machine_id in machine_ids:
        one = org.get("/api/fleet/machine", params={"machine_id": machine_id})
        history = org.get("/api/fleet/machine/history", params={"machine_id": machine_id, "hours": 168})
        assert one.status_code == 200 and history.status_code == 200, (one.text, history.text)
        machines[machine_id] = {"machine": one.json(), "history": history.json()}
    return {"fleet": org.fleet(limit=1000), "machines": machines}


def populate(server, contract) -> tuple[object, object, list[str]]:
    """Two organisations; machines with reports and history, one known from heartbeats only."""
    org, other = server.org(), server.org()
    ids = ["ws-001", "ws-002", TRICKY_ID]
    for n, machine_id in enumerate(ids):
        for cpu in (10.0 + n, 20.5 + n):  # two reports: two history samples each
            resp = org.report(machine_id, _report(contract, cpu))
            assert resp.status_code == 200, resp.text
    assert org.ping("heartbeat-only", hardware_id="hw-1").status_code == 200
    assert other.report("other-org-machine", _report(contract, 50.0)).status_code == 200
    return org, other, ids + ["heartbeat-only"]


def _report(contract, cpu: float) -> dict:
    return contract.sample_report(cpu_percent=cpu, system={"os": "Linux", "hostname": "h", "agent_version": "1.0.0"})


def backup(server, path, *extra: str):
    return server.cli("backup", str(path), *extra)


def restore(server, path, *extra: str):
    return server.cli("restore", str(path), *extra)


def assert_refused(done, *words: str) -> None:
    assert done.returncode != 0, done.stdout
    assert "Traceback" not in done.stderr, done.stderr
    assert done.stderr.startswith("dashfleet-admin: "), done.stderr
    for word in words:
        assert word in done.stderr, done.stderr


@pytest.mark.slow
def test_backup_wipe_restore_gives_the_same_fleet(server_factory, backend, tmp_path, contract):
    # Every report makes a history sample (the server keeps one per 5 s by default).
    server = server_factory(backend, history_min_spacing_seconds=0)
    org, other, ids = populate(server, contract)
    before, other_before = snapshot(org, ids), other.fleet()
    assert before["fleet"]["count"] == 4

    # Online: taken while the server runs, as a nightly job would.
    file = tmp_path / "fleet.backup"
    done = backup(server, file)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert file.stat().st_mode & 0o777 == 0o600, "a backup holds key and password hashes"
    assert summary["format"] == ("sqlite" if backend == "sqlite" else "jsonl")
    assert summary["tables"]["machine"] == 5 and summary["tables"]["sample"] == 7

    server.stop()
    wipe(server)
    done = restore(server, file, "--yes")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["tables"] == summary["tables"]
    server.start()

    assert snapshot(org, ids) == before
    assert other.fleet() == other_before
    # Ids keep being handed out after the restored ones (PostgreSQL sequences were moved on).
    # Named, so it is made now: an unnamed one may come from the harness's prefetch, made while the
    # backup ran and so rightly gone after the restore (a 401, one run in many).
    newcomer = server.org("after-restore")
    assert newcomer.report("after-restore", _report(contract, 1.0)).status_code == 200
    assert org.report("ws-004", _report(contract, 2.0)).status_code == 200
    assert org.fleet()["count"] == 5


@pytest.mark.slow
@pytest.mark.postgres
def test_a_sqlite_backup_moves_the_fleet_to_postgresql(server_factory, postgres, tmp_path, contract):
    single_node = server_factory("sqlite")
    org, _other, ids = populate(single_node, contract)
    before = snapshot(org, ids)
    file = tmp_path / "single-node.sqlite"
    assert backup(single_node, file).returncode == 0
    single_node.stop()

    scaled = server_factory.prepare("postgres")
    done = restore(scaled, file, "--yes")
    assert done.returncode == 0, done.stderr
    scaled.start()
    assert snapshot(org.via(scaled), ids) == before


@pytest.fixture
def cli_in_process(monkeypatch, capsys):
    """`dashfleet-admin ARGS` through admin.cli.main in this process, in a server's folder and
    settings: the same code as the command, without a second of interpreter start-up per call."""
    from admin.cli import main

    def run(server, *args: str) -> subprocess.CompletedProcess:
        monkeypatch.chdir(server.workdir)
        for name in [n for n in os.environ if n.startswith("DASHFLEET_")]:
            monkeypatch.delenv(name)
        for name, value in server.env.items():
            if name.startswith("DASHFLEET_"):
                monkeypatch.setenv(name, value)
        capsys.readouterr()
        status = main(list(args))
        out, err = capsys.readouterr()
        return subprocess.CompletedProcess(["dashfleet-admin", *args], status, out, err)

    return run


@pytest.mark.slow
def test_bad_backup_files_change_nothing(server_factory, tmp_path, contract, cli_in_process):
    # SQLite only: the readers and the one-transaction restore are the same code on every database
    # (the PostgreSQL restore path runs in the tests above).
    server = server_factory("sqlite")
    org, _other, ids = populate(server, contract)
    before = snapshot(org, ids)
    good = tmp_path / "good.sqlite"
    done = backup(server, good)  # the real command once; the refusals below run in-process
    assert done.returncode == 0, done.stderr
    revision = json.loads(done.stdout)["schema_revision"]

    def restore(server, path, *extra: str):
        return cli_in_process(server, "restore", str(path), *extra)

    # A backup never overwrites an older one by accident.
    assert_refused(cli_in_process(server, "backup", str(good)), "already exists", "--force")
    assert cli_in_process(server, "backup", str(good), "--force").returncode == 0

    # Restore refuses, with the reason, and the database stays as it was.
    garbage = tmp_path / "garbage"
    garbage.write_text('{"hello": "world"}\n')
    cut_sqlite = tmp_path / "cut.sqlite"
    cut_sqlite.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    # The right revision and real rows, but the end line is missing: the tables are already emptied
    # when that is found, so only the rollback keeps the data.
    header = {"format": "dashfleet-backup", "format_version": 1, "schema_revision": revision}
    cut_jsonl = tmp_path / "cut.jsonl"
    cut_jsonl.write_text(
        "\n".join(
            json.dumps(line)
            for line in (header, {"table": "organization", "columns": ["id", "name", "created_at"]}, [1, "x", 1.0])
        )
        + "\n"
    )
    other_revision = tmp_path / "other-revision.jsonl"
    other_revision.write_text(
        json.dumps({**header, "schema_revision": "9999_future"}) + "\n" + '{"end": true, "rows": 0}\n'
    )
    cases = [
        (restore(server, tmp_path / "missing.backup", "--yes"), ["does not exist"]),
        (restore(server, garbage, "--yes"), ["is not a DashFleet backup"]),
        (restore(server, cut_sqlite, "--yes"), ["is not a DashFleet backup"]),
        (restore(server, cut_jsonl, "--yes"), ["incomplete"]),
        (restore(server, other_revision, "--yes"), ["schema revision", "9999_future"]),
        (restore(server, good), ["--yes"]),  # no terminal and no --yes: nothing is replaced
    ]
    for done, words in cases:
        assert_refused(done, *words)
        assert snapshot(org, ids) == before

    # The good file still restores, even under a running server (which then reads the same rows).
    assert restore(server, good, "--yes").returncode == 0
    assert snapshot(org, ids) == before
