"""The UI mounted on the API's app (a real `python -m admin serve`): each answers its own paths."""

from __future__ import annotations


def test_pages_redirect_to_sign_in_and_api_paths_stay_json(server) -> None:
    home = server.http.get("/", follow_redirects=False)
    assert home.status_code == 303 and home.headers["location"] == "/login"
    deep = server.http.get("/machine?id=a%2Fb", follow_redirects=False)
    assert deep.status_code == 303 and deep.headers["location"] == "/login?next=%2Fmachine%3Fid%3Da%252Fb"
    login = server.http.get("/login")
    assert login.status_code == 200 and "text/html" in login.headers["content-type"]
    for path in ("/api/nothing-here", "/api/fleet/nothing"):
        missing = server.http.get(path)
        assert missing.status_code == 404 and missing.headers["content-type"].startswith("application/json")
        assert "error" in missing.json()
    assert server.http.get("/api/status").json()["status"] == "ok"
