"""Everything a request, a page or a job needs, built once per server process from Settings."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine

from admin.core.config import Settings
from admin.core.db import make_engine
from admin.core.limits import RateLimiter
from admin.services.accounts import AccountService
from admin.services.admission import MachineAdmission
from admin.services.alert_engine import AlertEngine
from admin.services.alerts import AlertService
from admin.services.audit import AuditService
from admin.services.downloads import Downloads
from admin.services.enrolment import EnrolmentService
from admin.services.fleet import FleetService
from admin.services.fleet_metrics import FleetMetrics
from admin.services.history import HistoryService
from admin.services.install_links import InstallLinkService
from admin.services.messaging import MessagingService
from admin.services.notifier import Notifier
from admin.services.sessions import WebSessionService
from admin.services.wakeups import Wakeups, libpq_url
from admin.services.writer import GroupWriter


@dataclass
class AppServices:
    settings: Settings
    engine: Engine
    accounts: AccountService
    fleet: FleetService
    fleet_metrics: FleetMetrics
    history: HistoryService
    limiter: RateLimiter
    writer: GroupWriter
    wakeups: Wakeups
    messaging: MessagingService
    downloads: Downloads
    install_links: InstallLinkService
    alert_engine: AlertEngine
    alerts: AlertService
    notifier: Notifier
    enrolment: EnrolmentService
    admission: MachineAdmission
    sessions: WebSessionService
    audit: AuditService

    @classmethod
    def build(cls, settings: Settings) -> AppServices:
        engine = make_engine(settings)
        writer = GroupWriter(engine, sample_spacing=settings.history_min_spacing_seconds)
        redis_url = settings.rate_limit_storage if settings.rate_limit_storage.startswith("redis") else None
        wakeups = Wakeups(postgres_url=libpq_url(settings.sqlalchemy_url), redis_url=redis_url)
        accounts = AccountService(engine)
        alert_engine = AlertEngine(engine, settings)
        notifier = Notifier(engine, settings)
        alert_engine.on_event = notifier.wake
        fleet = FleetService(engine, settings, writer)
        fleet.alerts = alert_engine
        limiter = RateLimiter(
            settings.rate_limit_storage,
            ping_per_minute=settings.ping_limit_per_minute,
            report_per_minute=settings.report_limit_per_minute,
        )
        admission = MachineAdmission(engine, settings, limiter)
        fleet.deletion_hooks.append(lambda _org, _machine: accounts.forget_cached_keys())
        fleet.deletion_hooks.append(lambda org, machine: admission.forget(org_id=org, machine_id=machine))
        return cls(
            settings=settings,
            engine=engine,
            accounts=accounts,
            fleet=fleet,
            fleet_metrics=FleetMetrics(engine, settings),
            history=HistoryService(engine, settings),
            limiter=limiter,
            writer=writer,
            wakeups=wakeups,
            messaging=MessagingService(engine, settings, wakeups, writer),
            downloads=Downloads(settings.downloads_path),
            install_links=InstallLinkService(engine, settings, accounts),
            alert_engine=alert_engine,
            alerts=AlertService(engine, settings, alert_engine),
            notifier=notifier,
            enrolment=EnrolmentService(engine, accounts),
            admission=admission,
            sessions=WebSessionService(engine, settings.resolved_storage_secret()),
            audit=AuditService(engine, settings.audit_retention_days),
        )
