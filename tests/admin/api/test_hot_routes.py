"""The agents' two routes answer alike whoever serves them: the hot-routes middleware (what the
server runs) or the FastAPI routes that document them in OpenAPI (what answers if the middleware is
ever left out). The rest of the suite, over real HTTP, only ever reaches the middleware."""

from contextlib import AsyncExitStack, asynccontextmanager

import httpx

from admin.api.hot_routes import HotRoutes
from admin.core.config import Settings
from admin.core.db import migrate
from admin.main import create_app
from admin.services.messaging import CommandIn, MessageIn
from common.constants import PATH_PING, PATH_REPORT
from tests.helpers.api import sample_report


@asynccontextmanager
async def two_servings(tmp_path, **flags: bool):
    """One database served twice in process: with the middleware, and with it left out."""
    settings = Settings(_env_file=None, data_dir=tmp_path, database_url="", **flags)
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
        yield clients, agent_key.api_key, read_key.api_key, with_middleware.state.services, org.id
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
    async with two_servings(tmp_path) as (clients, agent, read, _, _):
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
    async with two_servings(tmp_path) as (clients, agent, _, _, _):
        resp = await clients["middleware"].get(PATH_REPORT, headers={"Authorization": f"Bearer {agent}"})
        assert resp.status_code == 405 and resp.headers["allow"] == "POST, OPTIONS"
        assert (await clients["middleware"].post("/api/fleet/reports", json={})).status_code == 404


async def test_delivery_state_changes_answer_alike(tmp_path):
    """POST /api/agent/deliveries/{id}: each request is sent to the middleware, then to the framework
    (so a move that the first made is, for the second, a retried request with the same answer)."""
    flags = {"feature_messaging": True, "feature_commands": True}
    async with two_servings(tmp_path, **flags) as (clients, agent, read, services, org_id):
        for machine_id in ("m-1", "m-2"):
            await clients["middleware"].post(PATH_PING, json={"machine_id": machine_id}, headers=_bearer(agent))
        messaging = services.messaging
        await messaging.send_message(org_id=org_id, message=MessageIn(title="t", machine_ids=["m-1"]), actor="t")
        await messaging.send_command(
            org_id=org_id, command=CommandIn(kind="report_now", machine_ids=["m-2"]), actor="t"
        )
        message, command = (messaging.inbox(org_id=org_id, machine_id=m)[0]["delivery_id"] for m in ("m-1", "m-2"))
        cases = [
            ("delivered", message, {"machine_id": "m-1", "state": "delivered"}, agent),
            ("displayed", message, {"machine_id": "m-1", "state": "displayed"}, agent),
            ("backwards", message, {"machine_id": "m-1", "state": "delivered"}, agent),
            ("not a state", message, {"machine_id": "m-1", "state": "queued"}, agent),
            (
                "a message with an exit code",
                message,
                {"machine_id": "m-1", "state": "acknowledged", "exit_code": 0},
                agent,
            ),
            ("another machine's", command, {"machine_id": "m-1", "state": "delivered"}, agent),
            ("not an id", "x1", {"machine_id": "m-1", "state": "delivered"}, agent),
            ("id 0", "0", {"machine_id": "m-1", "state": "delivered"}, agent),
            ("no such id", "99999", {"machine_id": "m-2", "state": "delivered"}, agent),
            ("a read key", command, {"machine_id": "m-2", "state": "delivered"}, read),
            ("no key", command, {"machine_id": "m-2", "state": "delivered"}, None),
            ("not JSON", command, b"{not json", agent),
            ("no machine id", command, {"state": "delivered"}, agent),
            ("a running command", command, {"machine_id": "m-2", "state": "running"}, agent),
            ("its result", command, {"machine_id": "m-2", "state": "succeeded", "exit_code": 0, "output": "ok"}, agent),
        ]
        answers = {}
        for what, delivery_id, body, key in cases:
            answers[what] = await _answers(
                clients, f"/api/agent/deliveries/{delivery_id}", _bearer(key) if key else {}, body
            )
        command_row = messaging.item(org_id=org_id, item_type="command", item_id=_item_id(messaging, org_id))
    for what, (middleware, framework) in answers.items():
        assert middleware == framework, what
        assert middleware[1] == "application/json", what
    statuses = {what: answer[0][0] for what, answer in answers.items()}
    assert statuses == {
        "delivered": 200,
        "displayed": 200,
        "backwards": 409,
        "not a state": 422,
        "a message with an exit code": 422,
        "another machine's": 404,
        "not an id": 404,
        "id 0": 404,
        "no such id": 404,
        "a read key": 403,
        "no key": 401,
        "not JSON": 400,
        "no machine id": 422,
        "a running command": 200,
        "its result": 200,
    }
    assert answers["backwards"][0][3] == {"error": "cannot go from displayed to delivered", "state": "displayed"}
    [delivery] = command_row["deliveries"]
    assert (delivery["state"], delivery["exit_code"], delivery["output"]) == ("succeeded", 0, "ok")


def _item_id(messaging, org_id: int) -> str:
    return messaging.list_items(org_id=org_id, item_type="command")["data"][0]["command_id"]


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}
