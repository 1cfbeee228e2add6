"""Security headers on every page and API answer, and the API docs served without a CDN (finding 13).

Checked on the real server over HTTP; tests/admin/ui/test_browser.py checks in Chromium that the
pages still work under the policy (no violation is reported) and that /api/docs renders.
"""

from __future__ import annotations

import re

import pytest

PATHS = ["/login", "/", "/api/status", "/api/nothing-here", "/api/docs", "/api/openapi.json"]


def policy(header: str) -> dict[str, list[str]]:
    directives = {}
    for part in header.split(";"):
        words = part.split()
        if words:
            directives[words[0]] = words[1:]
    return directives


@pytest.mark.parametrize("path", PATHS)
def test_every_answer_carries_the_security_headers(server, path) -> None:
    resp = server.http.get(path, follow_redirects=False)
    assert resp.headers.get("x-content-type-options") == "nosniff"
    assert resp.headers.get("referrer-policy") == "same-origin"
    assert resp.headers.get("x-frame-options") == "DENY"
    csp = policy(resp.headers.get("content-security-policy", ""))
    assert csp.get("frame-ancestors") == ["'none'"]
    assert csp.get("default-src") == ["'self'"]
    assert csp.get("object-src") == ["'none'"]
    assert csp.get("base-uri") == ["'self'"]
    assert csp.get("form-action") == ["'self'"]
    # Scripts and connections only from this server (no host, no scheme wildcard).
    for directive in ("script-src", "connect-src", "style-src", "img-src", "font-src"):
        sources = csp.get(directive, [])
        assert sources, f"{directive} missing"
        assert all(s.startswith("'") or s in ("data:", "blob:") for s in sources), (directive, sources)
    # Plain HTTP here: no HSTS (it belongs to HTTPS answers only).
    assert "strict-transport-security" not in resp.headers


def test_hsts_only_over_https(server) -> None:
    # Behind the proxy on 127.0.0.1 (trusted), X-Forwarded-Proto says how the browser came.
    resp = server.http.get("/login", headers={"X-Forwarded-Proto": "https"})
    assert resp.headers.get("strict-transport-security", "").startswith("max-age=")


def test_the_api_docs_load_nothing_from_another_host(server) -> None:
    page = server.http.get("/api/docs")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assets = re.findall(r"""(?:src|href)=["']([^"']+)["']""", page.text)
    assert assets, page.text[:500]
    for asset in assets:
        assert asset.startswith("/"), f"/api/docs loads {asset} from another host"
        got = server.http.get(asset)
        assert got.status_code == 200, asset
        assert got.headers.get("x-content-type-options") == "nosniff"
    # The script that starts Swagger UI points at this server's schema.
    assert "/api/openapi.json" in page.text
    assert "cdn" not in page.text.lower()
