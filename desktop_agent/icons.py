"""Tray icons drawn with Pillow from the agent's state: one round badge, its colour the news.

Drawn, not loaded from files, so every state has an icon and the palette lives in one place.
"""

from __future__ import annotations

from PIL import Image, ImageDraw

from desktop_agent.service import AgentState

# Colours chosen to differ in hue and brightness (readable for the common colour blindnesses).
COLOURS: dict[str, tuple[int, int, int]] = {
    "ok": (34, 170, 76),  # green
    "warning": (245, 166, 35),  # amber
    "critical": (214, 39, 40),  # red
    "unreachable": (128, 128, 128),  # grey: the server cannot be reached
}
OUTLINE = (32, 32, 32)
SIZE = 64


def icon_key(state: AgentState) -> str:
    """Which colour the state shows: grey until the server answers, then the local health."""
    if state.connected is not True or state.sample is None:
        return "unreachable"
    return state.sample.health.status


def draw_icon(key: str, *, paused: bool = False, size: int = SIZE) -> Image.Image:
    image = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    margin = size // 16
    draw.ellipse(
        (margin, margin, size - 1 - margin, size - 1 - margin),
        fill=COLOURS[key] + (255,),
        outline=OUTLINE + (255,),
        width=max(1, size // 32),
    )
    if paused:
        # Two bars, the universal sign for "paused", over the colour.
        bar_w, bar_h = size // 8, size // 2.4
        top = (size - bar_h) / 2
        for left in (size * 0.34, size * 0.54):
            draw.rectangle((left, top, left + bar_w, top + bar_h), fill=(255, 255, 255, 255))
    return image
