"""GET /install/<code>.sh and .ps1: the install scripts of an install link; no key (the code in
the URL is the secret). GET /install/<code>: what to run with it, using no use.

A served script is one use of the link. An unknown code answers 404, an expired, used-up or
revoked link 410, each with a script that says why and installs nothing (the commands pipe the
body into sh or PowerShell whatever the status).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse
from starlette.concurrency import run_in_threadpool

from admin.api.deps import ServicesDep
from admin.services import install_scripts
from admin.services.install_links import INSTALL_PATH, NoPublicUrl, commands_for, link_base_url

router = APIRouter(tags=["install"])

STATUS_OF_REFUSAL = {"unknown": 404, "expired": 410, "used up": 410, "revoked": 410, "no public url": 503}
# The scripts carry an enrol key: no cache anywhere may keep them.
NO_STORE = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
SCRIPT_TYPES = {".sh": "text/x-shellscript; charset=utf-8", ".ps1": "text/plain; charset=utf-8"}

_SCRIPT_DOC = (
    "A script that downloads this server's agent package, checks its SHA-256, installs it and "
    "configures it with the server's URL and the link's enrol key; one use of the link. An unknown "
    "link answers 404, an expired, used-up or revoked one 410, with a script that says why and exits "
    "with an error, installing nothing."
)


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _refused(reason: str, suffix: str) -> PlainTextResponse:
    body = install_scripts.refusal_script(reason, powershell=suffix == ".ps1")
    return PlainTextResponse(body, STATUS_OF_REFUSAL[reason], NO_STORE, SCRIPT_TYPES[suffix])


@router.get("/install/{code}.sh", summary="Install script for Linux and macOS", response_class=PlainTextResponse,
            description=_SCRIPT_DOC)  # fmt: skip
async def shell_script(code: str, request: Request, services: ServicesDep) -> PlainTextResponse:
    return await _script(code, ".sh", request, services)


@router.get("/install/{code}.ps1", summary="Install script for Windows (PowerShell)", response_class=PlainTextResponse,
            description=_SCRIPT_DOC)  # fmt: skip
async def powershell_script(code: str, request: Request, services: ServicesDep) -> PlainTextResponse:
    return await _script(code, ".ps1", request, services)


async def _script(code: str, suffix: str, request: Request, services: ServicesDep) -> PlainTextResponse:
    try:
        base = link_base_url(services.settings, str(request.base_url))
    except NoPublicUrl:
        return _refused("no public url", suffix)
    use, state = await run_in_threadpool(services.install_links.use, code, client=_client(request))
    if use is None:
        return _refused(state, suffix)
    packages = await run_in_threadpool(services.downloads.own_version)
    render = install_scripts.powershell_script if suffix == ".ps1" else install_scripts.shell_script
    body = render(server=base, enroll_key=use.enroll_key, packages=packages)
    return PlainTextResponse(body, 200, NO_STORE, SCRIPT_TYPES[suffix])


@router.get("/install/{code}", summary="What to run with an install link (uses nothing)",
            response_class=PlainTextResponse)  # fmt: skip
async def link_page(code: str, request: Request, services: ServicesDep) -> PlainTextResponse:
    try:
        base = link_base_url(services.settings, str(request.base_url))
    except NoPublicUrl:
        return _refused("no public url", ".sh")
    state = await run_in_threadpool(services.install_links.state_of, code)
    if state != "live":
        message = install_scripts.REFUSALS[state]
        return PlainTextResponse(f"DashFleet: {message}.\n", STATUS_OF_REFUSAL[state], NO_STORE)
    commands = commands_for(base + INSTALL_PATH + code)
    text = (
        "DashFleet agent install link. Paste one command on the workstation:\n\n"
        f"Linux and macOS (a terminal):\n  {commands['linux']}\n\n"
        f"Windows (PowerShell, Run as administrator):\n  {commands['windows']}\n\n"
        "It installs this server's agent, which enrols itself and appears on the fleet page.\n"
    )
    return PlainTextResponse(text, 200, NO_STORE)
