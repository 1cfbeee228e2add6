"""Unknown API paths and wrong methods answer JSON errors, never the web UI's HTML page."""

import httpx


def test_unknown_api_path_is_a_json_404(server, contract):
    body = contract.error(httpx.get(server.url + "/api/no-such-thing"), 404)
    assert "/api/no-such-thing" in body["error"]
    contract.error(httpx.get(server.url + "/api"), 404)  # the API's root too, not the web UI's page


def test_known_path_with_another_method_is_a_405_naming_the_right_one(server, contract):
    resp = httpx.get(server.url + "/api/fleet/report")
    body = contract.error(resp, 405)
    assert resp.headers["allow"] == "POST, OPTIONS"
    assert "POST" in body["error"]
    assert httpx.delete(server.url + "/api/status").headers["allow"] == "GET, HEAD, OPTIONS"


def test_head_and_options_answer_the_api_never_the_web_ui(server, contract):
    assert httpx.head(server.url + "/api/status").status_code == 200  # load balancers' health checks
    for method in ("HEAD", "OPTIONS"):
        resp = httpx.request(method, server.url + "/api/no-such-thing")
        assert resp.status_code == 404 and resp.headers["content-type"] == "application/json", method
    resp = httpx.head(server.url + "/api/fleet")
    assert resp.status_code == 405 and resp.headers["allow"] == "GET, OPTIONS"
    resp = httpx.options(server.url + "/api/fleet/report")
    assert resp.status_code == 204 and resp.headers["allow"] == "POST, OPTIONS"
