"""The rule and channel forms of the alert settings pages: empty to add, filled to edit.

Fields only build what the services validate (RuleIn/RulePatch, ChannelIn/ChannelPatch): the page
runs them through its admin check. A saved secret (a webhook's HMAC key, Apprise URLs) is never
put back into a field: an edit keeps it unless a new one is typed.
"""

from __future__ import annotations

from typing import Any

from nicegui import ui

from admin.services.alerts import ChannelIn, ChannelPatch, RuleIn, RulePatch


def machine_ids(text: str) -> list[str] | None:
    """Machine ids, one per line; empty: the whole organisation."""
    ids = [line.strip() for line in text.splitlines() if line.strip()]
    return ids or None


class RuleForm:
    """The fields of a rule, empty (add) or holding a rule (edit); `prefix` keeps their markers apart."""

    def __init__(self, names: dict[int, str], rule: dict[str, Any] | None = None, prefix: str = "") -> None:
        r = rule or {}
        self.editing = rule is not None
        self.name = ui.input("Name", value=r.get("name", "")).mark(f"{prefix}rule-name")
        self.kind = ui.select(["offline", "cpu", "ram", "disk"], value=r.get("kind", "offline"), label="Kind")
        self.kind.mark(f"{prefix}rule-kind")
        if self.editing:
            self.kind.disable()  # a rule's kind stays what it is: a new kind is a new rule
        self.threshold = ui.number("Threshold (%)", value=r.get("threshold"), min=0, max=100)
        self.threshold.mark(f"{prefix}rule-threshold")
        self.clear = ui.number("Clears below (%), optional", value=r.get("clear_below"), min=0, max=100)
        self.clear.mark(f"{prefix}rule-clear")
        self.for_seconds = ui.number("For (seconds)", value=r.get("for_seconds", 0), min=0)
        self.for_seconds.mark(f"{prefix}rule-for")
        self.severity = ui.select(["warning", "critical"], value=r.get("severity", "warning"), label="Severity")
        self.severity.mark(f"{prefix}rule-severity")
        self.channels = ui.select(names, multiple=True, value=list(r.get("channels", [])), label="Channels")
        self.channels.mark(f"{prefix}rule-channels")
        machines = "\n".join(r.get("machine_ids") or [])
        self.machines = ui.textarea("Machines (one id per line; empty: all)", value=machines)
        self.machines.mark(f"{prefix}rule-machines")
        # Off: evaluated nowhere; turning a rule off resolves what it fires (and says so, once).
        self.enabled = ui.checkbox("On", value=r.get("enabled", True)).mark(f"{prefix}rule-enabled")

    def fields(self) -> dict[str, Any]:
        return {
            "name": self.name.value or "",
            "threshold": self.threshold.value,
            "clear_below": self.clear.value,
            "for_seconds": int(self.for_seconds.value or 0),
            "severity": self.severity.value,
            "channels": list(self.channels.value or []),
            "machine_ids": machine_ids(self.machines.value or ""),
            "enabled": bool(self.enabled.value),
        }

    def new_rule(self) -> RuleIn:
        return RuleIn(kind=self.kind.value, **self.fields())

    def patch(self) -> RulePatch:
        fields = self.fields()
        return RulePatch(**fields, all=fields["machine_ids"] is None)


class ChannelForm:
    """The fields of a channel, empty (add) or holding one (edit). A saved secret is never put back
    in a field: editing keeps it unless a new one is typed (or, for a webhook, it is removed)."""

    def __init__(self, channel: dict[str, Any] | None = None, prefix: str = "") -> None:
        c = channel or {}
        self.editing = channel is not None
        self.name = ui.input("Name", value=c.get("name", "")).mark(f"{prefix}channel-name")
        self.kind = ui.select(["webhook", "email", "apprise"], value=c.get("kind", "webhook"), label="Kind")
        self.kind.mark(f"{prefix}channel-kind")
        shown = c.get("url") or "\n".join(c.get("to") or [])  # Apprise URLs are secret: never shown
        label = "Webhook URL, e-mail addresses or Apprise URLs (one per line)"
        if self.editing:
            self.kind.disable()
            if c["kind"] == "apprise":
                label = "New Apprise URLs, one per line (empty: keep the saved ones)"
        self.target = ui.textarea(label, value=shown).mark(f"{prefix}channel-target")
        hint = "Webhook secret (optional)" if not self.editing else "New webhook secret (empty: keep the saved one)"
        self.secret = ui.input(hint, password=True).mark(f"{prefix}channel-secret")
        self.remove_secret = None
        if self.editing and c["kind"] != "webhook":
            self.secret.set_visibility(False)
        elif self.editing and c.get("has_secret"):
            self.remove_secret = ui.checkbox("Remove the saved secret").mark(f"{prefix}channel-remove-secret")

    def _lines(self) -> list[str]:
        return [line.strip() for line in (self.target.value or "").splitlines() if line.strip()]

    def new_channel(self) -> ChannelIn:
        lines, kind = self._lines(), self.kind.value
        fields: dict[str, Any] = {"name": self.name.value or "", "kind": kind}
        if kind == "webhook":
            fields.update(url=lines[0] if lines else None, secret=self.secret.value or None)
        elif kind == "email":
            fields["to"] = lines
        else:
            fields["urls"] = lines
        return ChannelIn(**fields)

    def patch(self) -> ChannelPatch:
        lines, kind = self._lines(), self.kind.value
        fields: dict[str, Any] = {"name": self.name.value or ""}
        if kind == "webhook":
            fields["url"] = lines[0] if lines else None
            if self.secret.value:
                fields["secret"] = self.secret.value
            elif self.remove_secret is not None and self.remove_secret.value:
                fields["secret"] = ""
        elif kind == "email":
            fields["to"] = lines
        elif lines:
            fields["urls"] = lines
        return ChannelPatch(**fields)
