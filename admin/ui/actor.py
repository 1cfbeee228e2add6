"""Who is acting, for the audit log: the signed-in user and the address of their browser."""

from __future__ import annotations

from nicegui import ui

from admin.services.audit import Actor
from admin.ui import auth


def ui_actor(user: auth.SignedInUser) -> Actor:
    return Actor.user(user.email, auth.client_address(ui.context.client.request))
