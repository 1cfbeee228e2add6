"""The middleware order is set in one function (admin/api/middleware.py); this fails if it changes.

The order is what makes the hot path safe: the body limit must wrap the hot routes (they read the
body themselves), and the hot routes must run before the framework's routing. A change here is a
decision: update the expected order below together with docs/architecture.md.
"""

from admin.api.body_limit import BodyLimitMiddleware
from admin.api.hot_routes import HotRoutes
from admin.api.middleware import MIDDLEWARE_ORDER
from admin.api.request_metrics import RequestMetrics
from admin.api.security_headers import SecurityHeadersMiddleware
from admin.core.config import Settings
from admin.main import create_app
from admin.services import server_metrics

EXPECTED = [RequestMetrics, BodyLimitMiddleware, HotRoutes, SecurityHeadersMiddleware]  # outermost first


def _stack(app) -> list[type]:
    """The classes a request meets on its way in, in the app as it runs (the built stack)."""
    layer, seen = app.build_middleware_stack(), []
    while layer is not None:
        seen.append(type(layer))
        layer = getattr(layer, "app", None)
    return seen


def test_the_middleware_runs_in_the_documented_order(tmp_path, monkeypatch):
    # Metrics on: the whole stack. configure() is once per process, as in a server: undone after.
    monkeypatch.setattr(server_metrics, "_metrics", None)
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", "")
    app = create_app(Settings(_env_file=None, data_dir=tmp_path, database_url="", metrics_token="t"), with_ui=False)
    ours = [cls for cls in _stack(app) if cls.__module__.startswith("admin.")]
    assert ours == EXPECTED
    assert list(MIDDLEWARE_ORDER) == EXPECTED  # what the module says is what it does
    assert [m.cls for m in app.user_middleware] == EXPECTED  # nothing added elsewhere


def test_without_a_metrics_token_nothing_counts_requests(tmp_path, monkeypatch):
    monkeypatch.setattr(server_metrics, "_metrics", None)
    app = create_app(Settings(_env_file=None, data_dir=tmp_path, database_url=""), with_ui=False)
    assert [m.cls for m in app.user_middleware] == EXPECTED[1:]
    assert server_metrics.get() is None
