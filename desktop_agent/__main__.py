"""dashfleet-agent: collect this machine's health and report it to a DashFleet server.

Exit status: 0 success; 1 the server did not accept (--once) or the agent could not run;
2 bad configuration or usage. Every failure is one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import platformdirs

from common.version import __version__
from desktop_agent.config import APP_NAME, AgentConfig, ConfigError, config_search_path, resolve

if TYPE_CHECKING:  # imported where used, so --help and --print-config start fast and small
    from desktop_agent.credentials import MachineCredentials
    from desktop_agent.power import PowerWatcher
    from desktop_agent.queue import ReportQueue
    from desktop_agent.reporter import Reporter
    from desktop_agent.service import AgentService

log = logging.getLogger("desktop_agent")
EXIT_OK, EXIT_FAILED, EXIT_CONFIG = 0, 1, 2


def build_parser() -> argparse.ArgumentParser:
    search = " then ".join(str(p) for p in config_search_path())
    parser = argparse.ArgumentParser(
        prog="dashfleet-agent",
        description="Reports this machine's health to a DashFleet server and shows it in the tray.",
        epilog=f"Settings: flags win over DASHFLEET_* environment variables, which win over the config "
        f"file (--config, DASHFLEET_CONFIG, else {search}).",
    )
    parser.add_argument("--server", help="server URL, e.g. https://fleet.example.com")
    parser.add_argument("--token", help="organisation API key (api_...); prefer the config file or DASHFLEET_TOKEN")
    parser.add_argument(
        "--enroll-token",
        dest="enroll_token",
        help="enrol key: exchanged once for this machine's own key (visible to other users of this "
        "machine while the agent runs: prefer --enroll-token-file, DASHFLEET_ENROLL_TOKEN or the config file)",
    )
    parser.add_argument(
        "--enroll-token-file",
        dest="enroll_token_file",
        metavar="FILE",
        help="read the enrol key from FILE ('-': standard input)",
    )
    parser.add_argument("--machine-id", dest="machine_id", help="this machine's id in the fleet (default: hostname)")
    parser.add_argument("--interval", type=str, help="seconds between reports (default 60)")
    parser.add_argument(
        "--heartbeat-interval", dest="heartbeat_interval", type=str, help="seconds between heartbeats (default 30)"
    )
    parser.add_argument("--ca-bundle", dest="ca_bundle", help="PEM file of a CA to trust besides the system's")
    parser.add_argument("--once", action="store_true", help="send one report and one heartbeat, then exit")
    parser.add_argument("--no-tray", dest="tray", action="store_const", const=False, help="run without a tray icon")
    parser.add_argument("--config", help="config file to read instead of the platform's")
    parser.add_argument("--print-config", action="store_true", help="print the effective settings and exit")
    parser.add_argument("--verbose", action="store_true", help="log debug details to stderr and the log file")
    parser.add_argument("--version", action="version", version=f"dashfleet-agent {__version__}")
    return parser


def queue_path(state_dir: Path, config: AgentConfig) -> Path:
    """The queue's folder. One queue per server and machine id: reports are never sent to a server
    they were not for."""
    identity = hashlib.sha256(f"{config.server}\n{config.machine_id}".encode()).hexdigest()[:16]
    return state_dir / f"queue-{identity}"


def inbox_path(state_dir: Path, config: AgentConfig) -> Path:
    """The folder of the messages and commands received (desktop_agent/deliveries.py), per server and
    machine id as the queue, whose lock also keeps a second agent away from it."""
    return state_dir / queue_path(state_dir, config).name.replace("queue-", "inbox-", 1)


def _read_secret_file(path: str | None) -> str | None:
    """A key from a file or, for '-', standard input: never on the command line, where other users
    of the machine see it (/proc, ps) and shells keep it in their history."""
    if path is None:
        return None
    try:
        text = sys.stdin.readline() if path == "-" else Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"--enroll-token-file: cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
    token = text.strip()
    if not token:
        raise ConfigError(f"--enroll-token-file: {path} holds no key")
    return token


def _fail(message: str, status: int) -> int:
    print(f"dashfleet-agent: error: {message}", file=sys.stderr)
    return status


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    flags = {
        key: getattr(args, key)
        for key in ("server", "token", "machine_id", "interval", "heartbeat_interval", "ca_bundle", "tray")
    }
    try:
        flags["enroll_token"] = args.enroll_token or _read_secret_file(args.enroll_token_file)
        config, warnings = resolve(flags, config_file=args.config)
    except ConfigError as exc:
        return _fail(str(exc), EXIT_CONFIG)
    if args.print_config:
        # Installers and IT check a file with --print-config: the warnings the agent would log
        # (a misspelt key, say) are shown here too, in the same words, without changing the status.
        for warning in warnings:
            print(f"dashfleet-agent: warning: {warning}", file=sys.stderr)
        print(json.dumps(config.masked(), indent=2))
        return EXIT_OK

    from desktop_agent.logs import log_dir, setup_logging  # after the checks: --help stays fast

    setup_logging(verbose=args.verbose)
    for warning in warnings:
        log.warning("%s", warning)

    def reload() -> AgentConfig:  # refresh_config: the same flags, the files and variables read again
        return resolve(flags, config_file=args.config)[0]

    try:
        return _run(config, once=args.once, reload=reload)
    except KeyboardInterrupt:
        return _fail("interrupted", 130)
    except Exception as exc:
        # One line on stderr (the console handler drops tracebacks); the traceback goes to the file.
        log.error("unexpected %s: %s (details in %s)", type(exc).__name__, exc, log_dir(), exc_info=True)
        return EXIT_FAILED


def _run(config: AgentConfig, *, once: bool, reload: Callable[[], AgentConfig] | None = None) -> int:
    from desktop_agent.logs import log_dir
    from desktop_agent.queue import QueueBusy, ReportQueue, import_sqlite_queue
    from desktop_agent.reporter import Reporter
    from desktop_agent.service import AgentService

    state_dir = Path(platformdirs.user_state_dir(APP_NAME, appauthor=False))
    service: AgentService | None = None
    reporter = Reporter(
        config.server,
        config.token,
        ca_bundle=config.ca_bundle,
        sleep=lambda seconds: service.sleep(seconds) if service else False,
    )
    credentials = _credentials(config, reporter, state_dir)

    if once:
        service = AgentService(config, reporter, None, state_dir=str(state_dir), credentials=credentials)
        accepted, _line, error = service.run_once()
        reporter.close()
        return EXIT_OK if accepted else _fail(error or "not accepted", EXIT_FAILED)

    folder = queue_path(state_dir, config)
    try:
        queue = ReportQueue(folder)
    except QueueBusy:
        return _fail(
            f"another dashfleet-agent is already running for {config.machine_id!r} on {config.server}", EXIT_FAILED
        )
    earlier = folder.with_name(folder.name + ".sqlite3")  # the queue of earlier agents (SQLite)
    if earlier.exists():
        import_sqlite_queue(earlier, queue)
    service = AgentService(config, reporter, queue, state_dir=str(state_dir), credentials=credentials)
    from desktop_agent.deliveries import DeliveryStore
    from desktop_agent.inbox import Inbox

    service.inbox = Inbox(service, reporter, DeliveryStore(inbox_path(state_dir, config)))
    service.reload_config = reload
    if not config.tray:
        service.messages_ui_ready(False)
    goodbye = {"reason": "stop"}  # what the server is told on the way out (docs/agent.md, "Goodbye")
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: service.stop())
    if hasattr(signal, "SIGHUP"):  # the session ended (log-off, a closed terminal)

        def _logoff(*_: object) -> None:
            goodbye["reason"] = "logoff"
            service.stop()

        signal.signal(signal.SIGHUP, _logoff)
    log.info("dashfleet-agent %s started: %s", __version__, json.dumps(config.masked()))
    service.start()
    going, back = _power_events(service, goodbye)
    power = _watch_power(going, back)
    try:
        if config.tray:
            _run_tray(service, log_dir(), queue, (going, back))
        while not service.wait(1.0):  # a timeout keeps Ctrl+C working on Windows
            pass
    finally:
        if power is not None:
            power.close()
        service.stop()
        service.join()
        if not service.restart_requested:  # a restart is back in a moment: nothing to announce
            service.say_goodbye(goodbye["reason"])
        queue.close()
        reporter.close()
        log.info("dashfleet-agent stopped")
    if service.restart_requested:
        _restart()
    return EXIT_OK


PowerEvents = tuple[Callable[[str], object], Callable[[], object]]


def _power_events(service: AgentService, goodbye: dict[str, str]) -> PowerEvents:
    """What the OS's word that the machine or session goes (`going(reason)`) or is back does:
    goodbye now, and hello (a report at once) after a resume."""

    def going(reason: str) -> None:
        if reason in ("shutdown", "logoff"):
            goodbye["reason"] = reason  # the stop that follows says the same
        service.say_goodbye(reason)

    return going, service.send_now


def _watch_power(going: Callable[[str], object], back: Callable[[], object]) -> PowerWatcher | None:
    """Linux: sleep and shutdown as logind tells them (desktop_agent/power.py). Windows and macOS
    hear them through the tray (desktop_agent/win_session.py, mac_session.py), the headless agent
    there not at all (docs/agent.md, "Goodbye")."""
    if not sys.platform.startswith("linux"):
        return None
    from desktop_agent import power

    return power.watch(going, back)


def _restart() -> None:
    """restart_agent: the same program with the same arguments, once everything above is closed
    (queue lock released, log flushed). POSIX: exec in place, so the PID stays and a service
    manager (systemd, launchd) sees no exit. Windows, which has no exec: a new process is started
    and this one exits 0."""
    if getattr(sys, "frozen", False):  # the packaged agent (PyInstaller)
        argv = [sys.executable, *sys.argv[1:]]
    else:
        argv = [sys.executable, *sys.orig_argv[1:]]
    log.info("restarting: %s", argv)
    logging.shutdown()
    if sys.stdout is not None:
        sys.stdout.flush()
    if sys.platform == "win32":
        import subprocess

        subprocess.Popen(argv, close_fds=True)
        return
    os.execv(argv[0], argv)  # noqa: S606 - our own program, its own arguments


def _credentials(config: AgentConfig, reporter: Reporter, state_dir: Path) -> MachineCredentials | None:
    """This machine's own key, when it has one stored or an enrol key can buy one; None: the
    organisation key (`token`) is used as before."""
    from desktop_agent.credentials import KeyStore, MachineCredentials

    store = KeyStore(state_dir, config.server, config.machine_id)
    if not config.enroll_token and not store.has_key():
        return None
    from desktop_agent import collectors

    return MachineCredentials(
        reporter,
        store,
        enroll_token=config.enroll_token,
        machine_id=config.machine_id,
        hardware_id=collectors.hardware_id(str(state_dir)),
        fallback_token=config.token,
    )


def _run_tray(service: AgentService, log_folder: Path, queue: ReportQueue, power: PowerEvents) -> None:
    from desktop_agent.tray import Tray, TrayUnavailable

    tray_closed = threading.Event()
    watchdog = threading.Thread(target=_quit_watchdog, args=(service, queue, tray_closed), daemon=True)
    watchdog.start()
    try:
        Tray(service, log_folder, power=power).run()
        if not service.stopping:  # e.g. the X server went away under a still-running agent
            log.warning("the tray closed while the agent runs; running headless")
            service.messages_ui_ready(False)
    except TrayUnavailable as exc:
        log.warning("%s; running headless", exc)
        service.messages_ui_ready(False)
    finally:
        tray_closed.set()


# After Quit (or SIGTERM) the agent must end even if the tray library hangs while closing.
QUIT_GRACE_SECONDS = 10.0


def _quit_watchdog(service: AgentService, queue: ReportQueue, tray_closed: threading.Event) -> None:
    service.wait()
    if tray_closed.wait(QUIT_GRACE_SECONDS):
        return  # the normal way out: main() cleans up
    log.warning("the tray did not close within %.0f s of quitting; exiting anyway", QUIT_GRACE_SECONDS)
    service.join(5.0)
    queue.close()  # every report in it is already committed; this only releases the file
    logging.shutdown()
    os._exit(EXIT_OK)


if __name__ == "__main__":
    sys.exit(main())
