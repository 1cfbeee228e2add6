"""Builds the server: the JSON API on a plain FastAPI app, the NiceGUI web UI mounted on it.

The API does not pass through NiceGUI's middleware stack (measured: ~500 req/s under ui.run,
no measurable cost with ui.run_with on a plain app).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from admin.api.docs import serve_api_docs
from admin.api.errors import install_error_handlers
from admin.api.middleware import install_middleware
from admin.api.openapi import document_bearer_auth
from admin.api.routes import api_router, downloads, install_links
from admin.api.routes import metrics as metrics_routes
from admin.core.config import Settings, get_settings
from admin.services import server_metrics
from admin.services.context import AppServices
from common.constants import API_VERSION

log = logging.getLogger("dashfleet")
GC_YOUNG_THRESHOLD = 50_000


async def _maintenance_loop(services: AppServices) -> None:
    """Expiry and history retention off the request path, every maintenance_interval_seconds."""
    while True:
        try:
            done = await run_in_threadpool(services.fleet.maintain)
            await run_in_threadpool(services.install_links.expire)
            await run_in_threadpool(services.sessions.cleanup)  # ended sessions, forgotten failures
            if done["expired"]:
                log.info("maintenance: %(expired)d machines expired", done)
            overdue = await run_in_threadpool(services.messaging.maintain)
            if overdue:
                log.info("maintenance: %d deliveries expired", overdue)
            if pruned := await run_in_threadpool(services.audit.prune):
                log.info("maintenance: %d audit entries past retention deleted", pruned)
        except Exception:
            log.exception("maintenance run failed")
        await asyncio.sleep(services.settings.maintenance_interval_seconds)


async def _history_rollup_loop(services: AppServices) -> None:
    """Samples into 5-minute and hourly buckets, and each tier's retention (services/history.py);
    with several processes on PostgreSQL, one of them at a time (the others find it done)."""
    while True:
        await asyncio.sleep(services.settings.history_rollup_interval_seconds)
        try:
            done = await run_in_threadpool(services.history.roll_up)
            if done is not None and (done.samples or done.pruned_samples or done.pruned_buckets):
                log.info(
                    "history rollup: %d samples into %d buckets; pruned %d samples, %d buckets",
                    done.samples,
                    done.buckets,
                    done.pruned_samples,
                    done.pruned_buckets,
                )
        except Exception:
            log.exception("history rollup failed")


async def _alert_sweep_loop(services: AppServices) -> None:
    """Offline machines, pending alerts that came due, silences that ended (docs/alerts.md)."""
    while True:
        await asyncio.sleep(services.settings.alert_sweep_seconds)
        try:
            services.alert_engine.install_sweep(await run_in_threadpool(services.alert_engine.sweep))
        except Exception:
            log.exception("alert sweep failed")


def create_app(settings: Settings | None = None, *, with_ui: bool = True) -> FastAPI:
    settings = settings or get_settings()
    # Before anything imports prometheus_client (it picks its multi-process storage then).
    metrics = server_metrics.configure(settings.resolved_metrics_dir) if settings.metrics_token else None
    services = AppServices.build(settings)
    if metrics is not None:
        server_metrics.instrument(metrics, services.engine, services.writer)
        metrics.add_backlog("deliveries", services.messaging.queued_count)
        metrics.add_backlog("notifications", services.notifier.pending_count)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        services.writer.start()
        await services.wakeups.start()
        maintenance = asyncio.create_task(_maintenance_loop(services))
        await run_in_threadpool(services.alert_engine.refresh)
        sweep = asyncio.create_task(_alert_sweep_loop(services))
        notifier = asyncio.create_task(services.notifier.run())
        rollup = asyncio.create_task(_history_rollup_loop(services))
        # What start-up built (NiceGUI, SQLAlchemy, FastAPI) lives as long as the process: moved
        # out of the collector's sight, full collections under load drop from 100+ ms to ~10 ms.
        gc.collect()
        gc.freeze()
        # The start-up grace counts from now, when agents can reach the server (not from when the
        # process began: imports and migrations may take longer than the offline window).
        services.alert_engine.started = time.time()
        # Thousands of agents holding the inbox long poll are thousands of live requests: with
        # Python's default thresholds every few hundred requests a full collection walked them all
        # (stalls of a second and more, docs/benchmarks.md "Messages and commands"). Collections
        # stay on (cycles are freed), just rarer: the youngest generation at 50,000 allocations.
        gc.set_threshold(GC_YOUNG_THRESHOLD, 20, 50)
        try:
            yield
        finally:
            for task in (maintenance, sweep, notifier, rollup):
                task.cancel()
            await services.wakeups.stop()
            await services.writer.stop()
            services.notifier.close()
            services.engine.dispose()
            server_metrics.mark_process_dead()

    app = FastAPI(
        title="DashFleet",
        version=API_VERSION,
        description="Fleet monitoring API. Agents report and ping with an organisation's Bearer key; "
        'scripts list the organisation\'s fleet. Errors are `{"error": "..."}`.',
        lifespan=lifespan,
        docs_url=None,  # served by api/docs.py from local files
        redoc_url=None,
        openapi_url="/api/openapi.json",
        # FastAPI's native OpenTelemetry (0.165+; older versions keep this as an unused extra): its
        # per-request check for a configured provider reads the environment three times, ~10% of
        # the event loop's busy time when 1,000 agents post at once (docs/benchmarks.md, "Messages
        # and commands"). DashFleet exports its figures on /metrics, not through OpenTelemetry.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.services = services
    install_error_handlers(app)
    install_middleware(app, services)  # the body limit, the agents' two routes, the security headers
    serve_api_docs(app, openapi_url="/api/openapi.json")
    app.include_router(api_router)
    app.include_router(downloads.router)
    app.include_router(install_links.router)
    app.include_router(metrics_routes.server_router)  # GET /metrics, outside /api
    document_bearer_auth(app, "fleet", "messages and commands", "agent inbox", "alerts", "agent", "audit", "metrics")
    if with_ui:
        from admin.ui import mount_ui

        mount_ui(app, services)
    return app
