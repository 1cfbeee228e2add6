"""Pieces the messaging pages share: the send forms, state badges, progress texts, script output.

Everything a person or an agent wrote (titles, bodies, machine ids, script output) is shown with
labels, i.e. as text; output keeps its line breaks and scrolls inside a bounded box.
"""

from __future__ import annotations

from typing import Any

from nicegui import ui
from pydantic import ValidationError

from admin.services.context import AppServices
from admin.services.errors import ServiceError
from admin.services.messaging import COMMAND, COMMAND_KINDS, MESSAGE, SEVERITIES, CommandIn, MessageIn, Sent
from admin.ui import auth
from admin.ui.actor import ui_actor

STATE_COLOURS = {
    "queued": "grey-7",
    "delivered": "primary",
    "displayed": "primary",
    "running": "orange-9",
    "acknowledged": "positive",
    "succeeded": "positive",
    "failed": "negative",
    "timed_out": "negative",
    "expired": "grey-5",
    "cancelled": "grey-5",
}
SEVERITY_COLOURS = {"info": "primary", "warning": "orange-9", "critical": "negative"}
KIND_LABELS = {
    "report_now": "Report now",
    "refresh_config": "Reload settings",
    "restart_agent": "Restart the agent",
    "run_script": "Run an allow-listed script",
}


def state_badge(state: str) -> ui.badge:
    return ui.badge(state.replace("_", " "), color=STATE_COLOURS.get(state, "grey-7")).mark("delivery-state")


def progress_text(item: dict[str, Any], item_type: str) -> str:
    """'7 of 10 delivered, 2 acknowledged' (or '..., 2 finished' for commands)."""
    progress = item["progress"]
    done = "acknowledged" if item_type == MESSAGE else "finished"
    text = f"{progress['delivered']} of {progress['total']} delivered, {progress['done']} {done}"
    counts = item["counts"]
    failed = sum(counts.get(s, 0) for s in ("failed", "timed_out"))
    extra = [f"{failed} failed"] if failed else []
    extra += [f"{counts[s]} {s}" for s in ("expired", "cancelled") if counts.get(s)]
    return text + (f" ({', '.join(extra)})" if extra else "")


def output_box(output: str | None, cut: bool = False) -> None:
    """A script's output as text, line breaks kept, scrolling within a bounded box."""
    if not output:
        ui.label("No output.").classes("text-grey-7 text-sm")
        return
    if cut:
        ui.label("Only the last 64 KiB of the output were kept.").classes("text-xs text-grey-7")
    with ui.element("div").classes("w-full max-h-64 overflow-auto rounded bg-grey-2 dark:bg-grey-9 p-2"):
        ui.label(output).classes("font-mono text-xs whitespace-pre-wrap break-all").mark("command-output")


def first_error(exc: ValidationError) -> str:
    error = exc.errors(include_url=False)[0]
    where = ".".join(str(p) for p in error["loc"])
    return f"{where}: {error['msg']}" if where else error["msg"]


class MessageForm:
    """Title, text and severity of a message to send."""

    item_type = MESSAGE

    def build(self) -> None:
        self.title = ui.input("Title", validation={"Too long": lambda v: len(v or "") <= 120}).props("dense outlined")
        self.title.classes("w-full").mark("message-title")
        self.body = ui.textarea("Message").props("dense outlined autogrow maxlength=4000").classes("w-full")
        self.body.mark("message-body")
        self.severity = ui.select({s: s.capitalize() for s in SEVERITIES}, value="info", label="Severity")
        self.severity.props("dense outlined").classes("w-40").mark("message-severity")

    def payload(self, targets: dict[str, Any]) -> MessageIn:
        """The validated request (ValidationError when something is wrong)."""
        return MessageIn.model_validate(
            {"title": self.title.value or "", "body": self.body.value or "", "severity": self.severity.value, **targets}
        )

    def clear(self) -> None:
        self.title.value = ""
        self.body.value = ""


class CommandForm:
    """The kind of command, and for a script its name and arguments."""

    item_type = COMMAND

    def build(self) -> None:
        self.kind = ui.select({k: KIND_LABELS[k] for k in COMMAND_KINDS}, value="report_now", label="Command")
        self.kind.props("dense outlined").classes("w-64").mark("command-kind")
        with ui.column().classes("w-full gap-1") as self.script:
            self.name = ui.input("Script name (as the machine's allow-list names it)").props("dense outlined")
            self.name.classes("w-full").mark("command-script")
            self.args = ui.textarea("Arguments, one per line").props("dense outlined autogrow").classes("w-full")
            self.args.mark("command-args")
        self.script.bind_visibility_from(self.kind, "value", value="run_script")
        self.timeout = ui.number("Timeout (s)", value=60, min=1, max=900, precision=0).props("dense outlined")
        self.timeout.classes("w-32").mark("command-timeout")

    def payload(self, targets: dict[str, Any]) -> CommandIn:
        args: dict[str, Any] = {}
        if self.kind.value == "run_script":
            lines = [line for line in (self.args.value or "").splitlines() if line.strip()]
            args = {"name": (self.name.value or "").strip(), "args": lines}
        timeout = int(self.timeout.value) if isinstance(self.timeout.value, (int, float)) else 0
        return CommandIn.model_validate({"kind": self.kind.value, "args": args, "timeout": timeout, **targets})

    def clear(self) -> None:
        self.name.value = ""
        self.args.value = ""


async def send(services: AppServices, form: MessageForm | CommandForm, targets: dict[str, Any]) -> Sent | None:
    """Send what the form holds to `targets` ({"machine_ids": [...]} or {"all": True}), as the
    signed-in user; only an admin may (checked now: the role may have changed since the page
    loaded). Tells the user what happened; returns what was sent, or None."""
    user = await auth.current_user(services)
    if user is None or not user.is_admin:
        ui.notify("Only an admin can send messages and commands.", type="negative")
        return None
    try:
        payload = form.payload(targets)
    except ValidationError as exc:
        ui.notify(f"Not sent: {first_error(exc)}", type="warning")
        return None
    actor = ui_actor(user)
    try:
        if isinstance(payload, MessageIn):
            sent = await services.messaging.send_message(org_id=user.org_id, message=payload, actor=actor)
        else:
            sent = await services.messaging.send_command(org_id=user.org_id, command=payload, actor=actor)
    except ServiceError as exc:
        ui.notify(f"Not sent: {exc.message}", type="negative")
        return None
    noun = "machine" if sent.deliveries == 1 else "machines"
    ui.notify(f"Sent to {sent.deliveries} {noun}.", type="positive")
    form.clear()
    return sent
