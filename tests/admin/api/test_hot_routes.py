"""The agents' two routes answer alike whoever serves them: the hot-routes middleware (what the
server runs) or the FastAPI routes that document them in OpenAPI (what answers if the middleware is
ever left out). The rest of the suite, over real HTTP, only ever reaches the middleware."""

from contextlib import AsyncExitStack, asynccontextmanager

import httpx

from admin.api.hot_routes import HotRoutes
from admin.core.config import Settings
from admin.core.db import migrate
from admin.main import create_app
from common.constants import PATH_PING, PATH_REPORT
from tests.helpers.api import sample_report


@asynccontextmanager
async def two_servings(tmp_path):
    """One database served twice in process: with the middleware, and with it left out."""
    settings = Settings(_env_file=None, data_dir=tmp_path, database_url="")
    migrate(settings)
    with_middleware = create_app(settings, with_ui=False)
    without = create_app(settings, with_ui=False)
    without.user_middleware = [m for m in without.user_middleware if m.cls is not HotRoutes]
    accounts = with_middleware.state.services.accounts
    org, agent_key = accounts.create_org("hot")
    read_key = accounts.create_key(org_id=org.id, scopes=["read"])
    async with AsyncExitStack() as stack:
        clients = {}
        for name, app in (("middleware", with_middleware), ("framework", without)):
            await stack.enter_async_context(app.router.lifespan_context(app))  # the group writer runs
            clients[name] = await stack.enter_async_context(
                httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")
            )
        yield clients, agent_key.api_key, read_key.api_key
    assert [_has_hot_routes(app) for app in (with_middleware, without)] == [True, False]


def _has_hot_routes(app) -> bool:
    layer = app.middleware_stack  # built at the first request
    while layer is not None:
        if isinstance(layer, HotRoutes):
            return True
        layer = getattr(layer, "app", None)
    return False


def _requests(agent: str, read: str) -> list[tuple[str, str, dict, object]]:
    bearer = {"Authorization": f"Bearer {agent}"}
    return [
        ("ok report", PATH_REPORT, bearer, {"machine_id": "m-1", "report": sample_report()}),
        ("ok ping", PATH_PING, bearer, {"machine_id": "m-1", "hardware_id": "hw"}),
        ("no key", PATH_REPORT, {}, {"machine_id": "m-1", "report": sample_report()}),
        ("basic auth", PATH_PING, {"Authorization": "Basic eDp5"}, {"machine_id": "m-1"}),
        ("unknown key", PATH_PING, {"Authorization": "Bearer api_" + "x" * 43}, {"machine_id": "m-1"}),
        (
            "read-only key",
            PATH_REPORT,
            {"Authorization": f"Bearer {read}"},
            {"machine_id": "m-1", "report": sample_report()},
        ),
        ("not JSON", PATH_REPORT, bearer, b"{not json"),
        (
            "NaN",
            PATH_REPORT,
            bearer,
            b'{"machine_id": "m-1", "report": {"cpu_percent": NaN, "ram_percent": 1, "disk_percent": 1}}',
        ),
        ("out of range", PATH_REPORT, bearer, {"machine_id": "m-1", "report": sample_report(cpu_percent=101)}),
        ("an array", PATH_PING, bearer, [1, 2]),
        ("empty machine id", PATH_PING, bearer, {"machine_id": ""}),
    ]


async def test_both_paths_answer_alike(tmp_path):
    async with two_servings(tmp_path) as (clients, agent, read):
        answers = {
            what: await _answers(clients, path, headers, body) for what, path, headers, body in _requests(agent, read)
        }
    for what, (middleware, framework) in answers.items():
        assert middleware == framework, what
        assert middleware[1] == "application/json", what
    assert answers["ok report"][0][0] == 200 and answers["no key"][0][0] == 401  # they did run


async def _answers(clients, path, headers, body) -> list[tuple]:
    answers = []
    for client in clients.values():
        kwargs = {"content": body} if isinstance(body, bytes) else {"json": body}
        resp = await client.post(path, headers=headers, **kwargs)
        payload = resp.json()
        payload.pop("timestamp", None)  # the server's clock at receipt
        payload.pop("server_time_offset", None)
        answers.append((resp.status_code, resp.headers["content-type"], resp.headers.get("www-authenticate"), payload))
    return answers


async def test_middleware_leaves_other_methods_and_paths_to_the_app(tmp_path):
    async with two_servings(tmp_path) as (clients, agent, _):
        resp = await clients["middleware"].get(PATH_REPORT, headers={"Authorization": f"Bearer {agent}"})
        assert resp.status_code == 405 and resp.headers["allow"] == "POST, OPTIONS"
        assert (await clients["middleware"].post("/api/fleet/reports", json={})).status_code == 404
