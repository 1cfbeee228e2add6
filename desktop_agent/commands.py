"""The commands an agent obeys: a closed list of kinds, each mapped to a function here.

    report_now      send a report at once (the result is its status line)
    refresh_config  read agent.toml and the server's features again; intervals apply at once
    restart_agent   restart the agent process (docs/agent.md says how, per OS)
    run_script      run a script of this machine's allow-list (desktop_agent/allowlist.py)

There is no path from a server string to a shell: a kind that is not in KINDS fails, and
run_script's name and arguments only select and feed an entry that IT installed.

At most once: the server must accept `running` before a command runs, and the delivery is recorded
on disk as started (fsynced) before it runs; a started delivery is never run again, by this
process or the next (desktop_agent/inbox.py reports one that a restart interrupted as failed).
Commands run one at a time, in the order they came, on the inbox's worker thread, so reports and
heartbeats go on while one runs. Imported with the first command only.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING, Any

from desktop_agent.deliveries import Delivery

if TYPE_CHECKING:
    from desktop_agent.inbox import Inbox

log = logging.getLogger(__name__)

# report_now waits at most this long for the report it asked for (the command's timeout if shorter).
REPORT_NOW_WAIT_SECONDS = 60.0
# Settings refresh_config applies at once; any other change needs a restart (restart_agent).
LIVE_SETTINGS = ("interval", "heartbeat_interval")


@dataclass(frozen=True)
class Result:
    state: str  # "succeeded", "failed" or "timed_out"
    exit_code: int | None
    output: str


def execute(inbox: Inbox, record: Delivery) -> None:
    """Takes one command's delivery from `delivered` to its end; never runs it twice."""
    command = record.item.get("command") if isinstance(record.item.get("command"), dict) else {}
    assert isinstance(command, dict)
    command_id = str(command.get("command_id", ""))
    kind = command.get("kind")
    if record.started or record.result is not None or inbox.store.executed(command_id):
        return  # ran (or began to) before: at most once
    if not inbox.advance(record, "delivered"):
        return
    refusal = refuse(kind, command.get("args"))
    if refusal is not None:
        # Refused before running: delivered -> failed, as the protocol allows.
        finish(inbox, record, Result("failed", None, f"refused: {refusal}"))
        return
    if not inbox.advance(record, "running") or record.posted != "running":
        return  # cancelled or expired on the server (409), or the agent is stopping: never run
    record.started = True
    inbox.store.save(record)  # the executed-ids store: on disk before the command runs
    log.info("command %s (%s) runs", command_id, kind)
    timeout = _timeout(command.get("timeout"))
    try:
        result = KINDS[str(kind)](inbox, command.get("args") or {}, timeout, record)
    except Exception as exc:
        log.exception("command %s (%s) failed", command_id, kind)
        result = Result("failed", None, f"the agent failed to run it: {type(exc).__name__}: {exc}")
    if result is None:
        return  # restart_agent: recorded, posted by the agent that starts next
    finish(inbox, record, result)


def finish(inbox: Inbox, record: Delivery, result: Result) -> None:
    record.result = {"state": result.state, "exit_code": result.exit_code, "output": result.output}
    record.want = result.state
    inbox.store.save(record)  # kept on disk: a failed post is retried, never lost
    log.info("command delivery %s: %s", record.delivery_id, result.state)
    inbox.post(record)


def _timeout(value: object) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and 1 <= value <= 900:
        return float(value)
    return 60.0


def refuse(kind: object, args: object) -> str | None:
    """Why the command must not run at all (checked before `running`), or None."""
    if kind not in KINDS:
        return f"unknown command kind {kind!r} (this agent knows {', '.join(KINDS)})"
    if args is not None and not isinstance(args, dict):
        return "args must be an object"
    if kind == "run_script":
        from desktop_agent.allowlist import Refused, prepare

        assert isinstance(args, dict)
        try:
            prepare(args.get("name"), args.get("args", []))
        except Refused as exc:
            return str(exc)
    return None


# --- the kinds ---


def report_now(inbox: Inbox, args: dict[str, Any], timeout: float, record: Delivery) -> Result:
    service = inbox.service
    before = service.state.sample
    service.send_now()
    deadline = time.monotonic() + min(timeout, REPORT_NOW_WAIT_SECONDS)
    while service.state.sample is before:
        if time.monotonic() > deadline:
            return Result("timed_out", None, f"no report was made within {min(timeout, REPORT_NOW_WAIT_SECONDS):g} s")
        if service.sleep(0.1):
            return Result("failed", None, "the agent stopped before the report was made")
    line = service.state.status_line
    outcome = line.split(" | ", 1)[0][20:]  # the status line without its time
    return Result("succeeded" if outcome.startswith("OK") else "failed", None, line)


def refresh_config(inbox: Inbox, args: dict[str, Any], timeout: float, record: Delivery) -> Result:
    service = inbox.service
    lines = []
    if service.reload_config is not None:
        new = service.reload_config()
        old = service.config
        changed = [f.name for f in fields(old) if getattr(old, f.name) != getattr(new, f.name)]
        live = {name: getattr(new, name) for name in changed if name in LIVE_SETTINGS}
        if live:
            service.config = replace(old, **live)
            log.info("settings applied: %s", live)
        applied = ", ".join(f"{name} = {value:g}" for name, value in live.items()) or "nothing changed"
        lines.append(f"agent settings: {applied}")
        later = [name for name in changed if name not in LIVE_SETTINGS]
        if later:
            lines.append(f"changed, applied at the next restart (restart_agent): {', '.join(later)}")
    features = inbox.refresh_config()
    lines.append("server features: " + ", ".join(f"{name} {'on' if on else 'off'}" for name, on in features.items()))
    return Result("succeeded", None, "\n".join(lines))


def restart_agent(inbox: Inbox, args: dict[str, Any], timeout: float, record: Delivery) -> None:
    """Records success first (the agent that starts next posts it: `succeeded` means it came back),
    then asks the service to stop and start again (desktop_agent/__main__.py, restart())."""
    record.result = {"state": "succeeded", "exit_code": None, "output": "the agent restarted"}
    record.want = "succeeded"
    inbox.store.save(record)
    log.info("restart_agent: restarting")
    inbox.service.restart()


def run_script(inbox: Inbox, args: dict[str, Any], timeout: float, record: Delivery) -> Result:
    from desktop_agent import allowlist

    def started(pid: int) -> None:
        import psutil

        inbox.running_pid = pid
        try:
            record.process = [pid, psutil.Process(pid).create_time()]
        except psutil.Error:
            return
        inbox.store.save(record)

    try:
        ran = allowlist.run(args.get("name"), args.get("args", []), timeout, on_start=started)
    finally:
        inbox.running_pid = None
    output = ran.output
    if inbox.service.stopping and ran.state != "succeeded":
        output += "\n[the agent was stopped while the script ran: it was killed]"
    return Result(ran.state, ran.exit_code, output)


KINDS: dict[str, Callable[..., Result | None]] = {
    "report_now": report_now,
    "refresh_config": refresh_config,
    "restart_agent": restart_agent,
    "run_script": run_script,
}
