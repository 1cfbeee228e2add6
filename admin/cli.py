"""`dashfleet-admin`: serve, organisations, keys, users and a one-command demo.

Every command creates or migrates the database first, so they work in any order on a fresh
install. Bad input: a one-line error on stderr and a non-zero status, never a traceback.
"""

from __future__ import annotations

import argparse
import getpass
import json
import logging
import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from pydantic import TypeAdapter, ValidationError
from sqlalchemy.exc import SQLAlchemyError

from admin.core.config import Settings, unknown_setting_warnings
from admin.core.db import MigrationFailed, migrate
from admin.services.accounts import KEY_CACHE_SECONDS, ROLES, AccountService
from admin.services.audit import Actor
from admin.services.errors import ServiceError
from common.constants import ALL_SCOPES, SCOPE_AGENT, SCOPE_READ
from common.version import __version__

EXIT_FAILURE = 1


class CliError(Exception):
    """A clear message for the user; exit status 1."""


def _print_json(data: dict) -> None:
    print(json.dumps(data, indent=2))


def _accounts(settings: Settings) -> AccountService:
    from admin.core.db import make_engine

    return AccountService(make_engine(settings))


def cmd_serve(args: argparse.Namespace, settings: Settings) -> None:
    import uvicorn

    from admin.main import create_app

    uvicorn.run(
        create_app(settings),
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        proxy_headers=True,  # behind a reverse proxy, limits count the real client address
        forwarded_allow_ips=args.forwarded_allow_ips,
        access_log=args.access_log,
    )


def cmd_migrate(args: argparse.Namespace, settings: Settings) -> None:
    from sqlalchemy.engine import make_url

    from admin.core.db import make_engine, schema_revision

    engine = make_engine(settings)
    with engine.connect() as conn:
        revision = schema_revision(conn)
    engine.dispose()
    database = make_url(settings.sqlalchemy_url).render_as_string(hide_password=True)
    _print_json({"database": database, "revision": revision})


def cmd_org_create(args: argparse.Namespace, settings: Settings) -> None:
    org, key = _accounts(settings).create_org(args.name, actor=Actor.cli())
    _print_json({"org_id": org.id, "name": org.name, "api_key": key.api_key, "key_id": key.key_id})


def _org_options(org) -> dict:
    return {
        "org_id": org.id,
        "name": org.name,
        "require_enrolment": org.require_enrolment,
        "machine_quota": org.machine_quota,  # null: the server's DASHFLEET_MACHINE_QUOTA
    }


def _quota(text: str) -> int | None:
    return None if text == "default" else _positive_int(text)


def cmd_org_set(args: argparse.Namespace, settings: Settings) -> None:
    accounts = _accounts(settings)
    org = accounts.org_named(args.name)
    changed = False
    if args.machine_quota is not False:  # checked first: a bad quota changes nothing
        org, changed = accounts.set_machine_quota(org_id=org.id, quota=args.machine_quota, actor=Actor.cli()), True
    if args.require_enrolment is not None:
        org, changed = (
            accounts.set_require_enrolment(org_id=org.id, required=args.require_enrolment, actor=Actor.cli()),
            True,
        )
    if changed:
        # As for a revoked key: running servers see the change within their key cache's lifetime.
        time.sleep(KEY_CACHE_SECONDS)
    _print_json(_org_options(org))


def cmd_key_create(args: argparse.Namespace, settings: Settings) -> None:
    accounts = _accounts(settings)
    org = accounts.org_named(args.org)
    key = accounts.create_key(org_id=org.id, scopes=args.scope or [SCOPE_AGENT, SCOPE_READ], actor=Actor.cli())
    _print_json({"key_id": key.key_id, "api_key": key.api_key, "scopes": key.scopes})


def cmd_key_revoke(args: argparse.Namespace, settings: Settings) -> None:
    accounts = _accounts(settings)
    org = accounts.org_named(args.org)
    key = accounts.revoke_key(org_id=org.id, key_id=args.key_id, actor=Actor.cli())
    # Running servers remember a key for KEY_CACHE_SECONDS: waiting that long before answering
    # means that once this command has returned, every server refuses the key ("at once").
    time.sleep(KEY_CACHE_SECONDS)
    _print_json({"key_id": key.id, "revoked": True, "revoked_at": key.revoked_at})


def cmd_key_list(args: argparse.Namespace, settings: Settings) -> None:
    accounts = _accounts(settings)
    org = accounts.org_named(args.org)
    _print_json(
        {
            "keys": [
                {
                    "key_id": k.id,
                    "prefix": k.prefix,
                    "scopes": k.scopes.split(),
                    "created_at": k.created_at,
                    "revoked_at": k.revoked_at,
                    "machine_id": k.bound_machine_id,  # an enrolled machine's own key; null: the organisation's
                }
                for k in accounts.list_keys(org_id=org.id)
            ]
        }
    )


def _enrolment(settings: Settings):
    from admin.core.db import make_engine
    from admin.services.enrolment import EnrolmentService

    engine = make_engine(settings)
    return EnrolmentService(engine, AccountService(engine))


def _machine_id(text: str) -> str:
    from common.schemas import MachineId

    try:
        return TypeAdapter(MachineId).validate_python(text)
    except ValidationError as exc:
        raise argparse.ArgumentTypeError(f"invalid machine id: {exc.errors()[0]['msg']}") from None


def cmd_enrolment_list(args: argparse.Namespace, settings: Settings) -> None:
    org = _accounts(settings).org_named(args.org)
    # machine_id, hardware_id, key_id, key_prefix, enrolled_at: never the key itself.
    _print_json({"machines": [asdict(m) for m in _enrolment(settings).enrolled_machines(org_id=org.id)]})


def cmd_enrolment_reset(args: argparse.Namespace, settings: Settings) -> None:
    org = _accounts(settings).org_named(args.org)
    revoked = _enrolment(settings).reset(org_id=org.id, machine_id=args.machine_id, actor=Actor.cli())
    time.sleep(KEY_CACHE_SECONDS)  # as `key revoke`: every running server refuses the machine's keys now
    _print_json({"machine_id": args.machine_id, "revoked_keys": revoked})


def _install_links(settings: Settings):
    from admin.core.db import make_engine
    from admin.services.install_links import InstallLinkService

    engine = make_engine(settings)
    return InstallLinkService(engine, settings, AccountService(engine))


def cmd_install_link_create(args: argparse.Namespace, settings: Settings) -> None:
    org = _accounts(settings).org_named(args.org)
    created = _install_links(settings).create(
        org_id=org.id, actor=Actor.cli(), expires_in=args.expires_in, uses=args.uses
    )
    _print_json(created.as_dict())


def cmd_install_link_list(args: argparse.Namespace, settings: Settings) -> None:
    org = _accounts(settings).org_named(args.org)
    links = [
        {
            "link_id": link.link_id,
            "state": link.state,
            "created": link.created_at,
            "created_by": link.created_by,
            "expires": link.expires_at,
            "uses": link.uses_allowed,
            "used": link.uses_count,
            "last_used": link.last_used_at,
            "revoked": link.revoked_at,
        }
        for link in _install_links(settings).list(org_id=org.id)
    ]
    _print_json({"links": links})


def cmd_install_link_revoke(args: argparse.Namespace, settings: Settings) -> None:
    org = _accounts(settings).org_named(args.org)
    link = _install_links(settings).revoke(org_id=org.id, link_id=args.link_id, actor=Actor.cli())
    time.sleep(KEY_CACHE_SECONDS)  # as `key revoke`: every running server refuses its enrol key now
    _print_json({"link_id": link.link_id, "revoked": True, "revoked_at": link.revoked_at})


def _read_password(settings: Settings) -> str:
    if settings.password is not None:
        return settings.password.get_secret_value()
    if not sys.stdin.isatty():
        raise CliError("no password: set DASHFLEET_PASSWORD or run this command in a terminal")
    first = getpass.getpass("Password: ")
    if first != getpass.getpass("Repeat password: "):
        raise CliError("the passwords differ")
    return first


def cmd_user_create(args: argparse.Namespace, settings: Settings) -> None:
    accounts = _accounts(settings)
    org = accounts.org_named(args.org)
    user = accounts.create_user(
        org_id=org.id, email=args.email, password=_read_password(settings), role=args.role, actor=Actor.cli()
    )
    _print_json({"user_id": user.id, "email": user.email, "org": org.name, "role": user.role})


def cmd_user_set_password(args: argparse.Namespace, settings: Settings) -> None:
    accounts = _accounts(settings)
    org_id = accounts.org_named(args.org).id if args.org else None
    user = accounts.user_by_email(email=args.email, org_id=org_id)
    accounts.set_password(org_id=user.org_id, user_id=user.id, password=_read_password(settings), actor=Actor.cli())
    org = accounts.org(user.org_id)
    # The user's web sessions have ended (on every server process): they sign in with the new one.
    _print_json({"user_id": user.id, "email": user.email, "org": org.name, "sessions_ended": True})


def cmd_demo(args: argparse.Namespace, settings: Settings) -> None:
    from admin.demo import port_free, run_demo

    if not port_free(args.host, args.port):
        raise CliError(f"port {args.port} on {args.host} is in use; choose another with --port")
    # The demo shows the whole product: messages and commands are on unless the environment says
    # otherwise (DASHFLEET_FEATURE_MESSAGING / _COMMANDS); a real server keeps them off by default.
    shown = {name: True for name in ("feature_messaging", "feature_commands") if name not in settings.model_fields_set}
    run_demo(settings.model_copy(update=shown), host=args.host, port=args.port)


def cmd_backup(args: argparse.Namespace, settings: Settings) -> None:
    from admin.core.db import make_engine
    from admin.services.backup import backup

    _print_json(backup(make_engine(settings), Path(args.file), force=args.force))


def cmd_restore(args: argparse.Namespace, settings: Settings) -> None:
    from sqlalchemy.engine import make_url

    from admin.core.db import make_engine
    from admin.services.backup import restore

    database = make_url(settings.sqlalchemy_url).render_as_string(hide_password=True)
    if not args.yes:
        # It replaces every row: a person confirms at the prompt, a script says --yes.
        if not sys.stdin.isatty():
            raise CliError(f"restore replaces all data in {database}: add --yes to confirm")
        if input(f"Replace all data in {database} with {args.file}? [y/N] ").strip().lower() not in ("y", "yes"):
            raise CliError("not restored")
    _print_json(restore(make_engine(settings), Path(args.file)))


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value


def _port(text: str) -> int:
    value = _positive_int(text)
    if value > 65535:
        raise argparse.ArgumentTypeError("a port is at most 65535")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dashfleet-admin", description="DashFleet server and administration.")
    parser.add_argument("--version", action="version", version=f"dashfleet {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the web UI and the API")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=_port, default=8000, help="port to listen on (default 8000)")
    serve.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    serve.add_argument(
        "--forwarded-allow-ips",
        default="127.0.0.1",
        help="proxies whose X-Forwarded-For is trusted (default 127.0.0.1)",
    )
    serve.add_argument(
        "--access-log",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="log every request (off by default: the report route is hot)",
    )
    serve.set_defaults(handler=cmd_serve)

    migrate_cmd = commands.add_parser("migrate", help="create or upgrade the database schema, and say its revision")
    migrate_cmd.set_defaults(handler=cmd_migrate)

    org = commands.add_parser("org", help="organisations").add_subparsers(dest="action", required=True)
    org_create = org.add_parser("create", help="make an organisation and its first API key")
    org_create.add_argument("name")
    org_create.set_defaults(handler=cmd_org_create)

    org_set = org.add_parser("set", help="change an organisation's settings (none given: show them)")
    org_set.add_argument("name")
    org_set.add_argument(
        "--require-enrolment",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="refuse reports and heartbeats sent with organisation (unbound) agent keys",
    )
    org_set.add_argument(
        "--machine-quota",
        type=_quota,
        default=False,
        metavar="N|default",
        help="at most N machines ('default': the server's DASHFLEET_MACHINE_QUOTA)",
    )
    org_set.set_defaults(handler=cmd_org_set)

    key = commands.add_parser("key", help="API keys").add_subparsers(dest="action", required=True)
    key_create = key.add_parser("create", help="make an API key (shown once)")
    key_create.add_argument("--org", required=True, help="organisation name")
    key_create.add_argument(
        "--scope",
        action="append",
        choices=ALL_SCOPES,
        help="repeat for several (default: agent and read); enroll (for installers) stands alone",
    )
    key_create.set_defaults(handler=cmd_key_create)
    key_revoke = key.add_parser("revoke", help="revoke an API key at once")
    key_revoke.add_argument("--org", required=True, help="organisation name")
    key_revoke.add_argument("key_id", type=_positive_int)
    key_revoke.set_defaults(handler=cmd_key_revoke)
    key_list = key.add_parser("list", help="list an organisation's keys (never the secrets)")
    key_list.add_argument("--org", required=True, help="organisation name")
    key_list.set_defaults(handler=cmd_key_list)

    enrolment = commands.add_parser("enrolment", help="machines enrolled with their own keys").add_subparsers(
        dest="action", required=True
    )
    enrolment_list = enrolment.add_parser("list", help="an organisation's enrolled machines (never the keys)")
    enrolment_list.add_argument("--org", required=True, help="organisation name")
    enrolment_list.set_defaults(handler=cmd_enrolment_list)
    enrolment_reset = enrolment.add_parser(
        "reset", help="revoke a machine's own keys: its agent enrols again, from any hardware"
    )
    enrolment_reset.add_argument("--org", required=True, help="organisation name")
    enrolment_reset.add_argument("machine_id", type=_machine_id, metavar="MACHINE_ID")
    enrolment_reset.set_defaults(handler=cmd_enrolment_reset)

    user = commands.add_parser("user", help="web UI users").add_subparsers(dest="action", required=True)
    user_create = user.add_parser("create", help="make a user (password from DASHFLEET_PASSWORD or a prompt)")
    user_create.add_argument("email")
    user_create.add_argument("--org", required=True, help="organisation name")
    user_create.add_argument("--role", choices=ROLES, default="viewer")
    user_create.set_defaults(handler=cmd_user_create)
    user_password = user.add_parser(
        "set-password", help="give a user a new password (DASHFLEET_PASSWORD or a prompt); signs them out"
    )
    user_password.add_argument("email")
    user_password.add_argument("--org", help="organisation name (needed when the e-mail is in several)")
    user_password.set_defaults(handler=cmd_user_set_password)

    from admin.services.install_links import DEFAULT_EXPIRES_IN_SECONDS, DEFAULT_USES

    links = commands.add_parser("install-link", help="links that install and enrol the agent on workstations")
    links_actions = links.add_subparsers(dest="action", required=True)
    link_create = links_actions.add_parser(
        "create", help="make a link (needs DASHFLEET_PUBLIC_URL); prints its URL and one command per OS, once"
    )
    link_create.add_argument("--org", required=True, help="organisation name")
    link_create.add_argument(
        "--expires-in",
        type=_positive_int,
        default=DEFAULT_EXPIRES_IN_SECONDS,
        metavar="SECONDS",
        help=f"lifetime, 60 s to 30 days (default {DEFAULT_EXPIRES_IN_SECONDS})",
    )
    link_create.add_argument(
        "--uses",
        type=_positive_int,
        default=DEFAULT_USES,
        metavar="N",
        help=f"scripts served at most (default {DEFAULT_USES})",
    )
    link_create.set_defaults(handler=cmd_install_link_create)
    link_list = links_actions.add_parser("list", help="an organisation's links and their state (never the codes)")
    link_list.add_argument("--org", required=True, help="organisation name")
    link_list.set_defaults(handler=cmd_install_link_list)
    link_revoke = links_actions.add_parser("revoke", help="revoke a link and its enrol key at once")
    link_revoke.add_argument("--org", required=True, help="organisation name")
    link_revoke.add_argument("link_id", type=_positive_int)
    link_revoke.set_defaults(handler=cmd_install_link_revoke)

    backup = commands.add_parser("backup", help="copy the whole database to FILE (docs/deploy.md)")
    backup.add_argument("file", help="SQLite: a SQLite file; PostgreSQL: JSON Lines")
    backup.add_argument("--force", action="store_true", help="replace FILE if it exists")
    backup.set_defaults(handler=cmd_backup)
    restore = commands.add_parser("restore", help="replace all data with a backup's (stop the servers first)")
    restore.add_argument("file", help="a file made by `backup`, from SQLite or PostgreSQL")
    restore.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    restore.set_defaults(handler=cmd_restore)

    audit = commands.add_parser("audit", help="the audit log").add_subparsers(dest="action", required=True)
    audit_verify = audit.add_parser("verify", help="check the audit log's hash chain; name its first broken link")
    audit_verify.add_argument("--org", help="one organisation (default: all)")
    audit_verify.set_defaults(handler=cmd_audit_verify)

    demo = commands.add_parser("demo", help="a complete local fleet: server, demo org and login, live agent")
    demo.add_argument("--host", default="127.0.0.1")
    demo.add_argument("--port", type=_port, default=8000)
    demo.set_defaults(handler=cmd_demo)
    return parser


def cmd_audit_verify(args: argparse.Namespace, settings: Settings) -> None:
    from admin.core.db import make_engine
    from admin.services.audit import AuditService

    org_id = _accounts(settings).org_named(args.org).id if args.org else None
    verdicts = AuditService(make_engine(settings), settings.audit_retention_days).verify(org_id=org_id)
    broken = [v for v in verdicts if not v.ok]
    _print_json(
        {
            "ok": not broken,
            "organisations": len(verdicts),
            "entries_checked": sum(v.checked for v in verdicts),
            "broken": [{"org_id": v.org_id, "entry_id": v.broken_id, "reason": v.reason} for v in broken],
        }
    )
    if broken:
        first = broken[0]
        raise CliError(f"audit log broken: organisation {first.org_id}, entry {first.broken_id}: {first.reason}")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for routine in ("alembic", "httpx"):  # migrations and the demo's own requests are not news
        logging.getLogger(routine).setLevel(logging.WARNING)
    handler: Callable[[argparse.Namespace, Settings], None] = args.handler
    try:
        settings = Settings()
        for warning in unknown_setting_warnings(os.environ):
            print(f"dashfleet-admin: warning: {warning}", file=sys.stderr)
        migrate(settings)
        handler(args, settings)
    except ValidationError as exc:
        first = exc.errors()[0]
        message = first["msg"].removeprefix("Value error, ")  # the settings' own checks say which
        where = "setting DASHFLEET_" + "_".join(str(p) for p in first["loc"]).upper() if first["loc"] else "settings"
        print(f"dashfleet-admin: invalid {where}: {message}", file=sys.stderr)
        return EXIT_FAILURE
    except (ServiceError, CliError) as exc:
        message = exc.message if isinstance(exc, ServiceError) else str(exc)
        print(f"dashfleet-admin: {message}", file=sys.stderr)
        return EXIT_FAILURE
    except MigrationFailed as exc:
        print(
            f"dashfleet-admin: cannot migrate the database ({exc}); was it written by a newer "
            "DashFleet? Install that version again, or restore a backup made by this one.",
            file=sys.stderr,
        )
        return EXIT_FAILURE
    except SQLAlchemyError as exc:
        print(f"dashfleet-admin: database error: {exc.__class__.__name__}: {str(exc).splitlines()[0]}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `dashfleet-admin ... | head`: the reader has what it wanted
        # Python would flush stdout again on exit and fail the same way: point it at /dev/null.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILURE
    return 0
