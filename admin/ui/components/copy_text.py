"""A value shown as selectable monospace text with a copy button.

Rendered as a label (text, never HTML or Markdown: the server URL comes from the request's Host
header). The copy uses the Clipboard API where the browser allows it (HTTPS or localhost) and
falls back to a hidden textarea with execCommand('copy') on plain HTTP.
"""

from __future__ import annotations

import json

from nicegui import ui

_COPY_JS = """
(() => {{
  const text = {text};
  if (navigator.clipboard && window.isSecureContext) {{ return navigator.clipboard.writeText(text).then(() => true); }}
  const area = document.createElement('textarea');
  area.value = text; area.setAttribute('readonly', ''); area.style.position = 'fixed'; area.style.opacity = '0';
  document.body.appendChild(area); area.select();
  const done = document.execCommand('copy'); document.body.removeChild(area); return done;
}})()
"""


async def copy_to_clipboard(value: str) -> None:
    try:
        copied = await ui.run_javascript(_COPY_JS.format(text=json.dumps(value)), timeout=3.0)
    except TimeoutError:
        copied = False
    if copied:
        ui.notify("Copied to the clipboard.", type="positive")
    else:
        ui.notify("The browser refused to copy: select the text and copy it by hand.", type="warning")


def copy_text(value: str, *, marker: str | None = None) -> ui.row:
    with (
        ui.row()
        .classes("w-full items-start gap-1 no-wrap rounded p-2")
        .style("background: rgba(127, 127, 127, 0.12)") as row
    ):
        label = ui.label(value).classes("font-mono text-sm break-all grow select-all")
        if marker:
            label.mark(marker)
        ui.button(icon="content_copy", on_click=lambda: copy_to_clipboard(value)).props(
            'flat round dense size=sm aria-label="Copy"'
        ).tooltip("Copy")
    return row
