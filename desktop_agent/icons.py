"""Tray icons drawn with Pillow from the agent's state: a round badge whose colour AND mark say it.

| state | colour | mark |
| --- | --- | --- |
| ok | green | a check |
| warning | amber | an exclamation mark |
| critical | red | a cross |
| paused | blue | a pause sign (two bars) |
| unreachable | grey | a slash: not connected (or nothing measured yet) |

The mark carries the meaning for people who cannot tell the colours apart (red and green are the
ones most often confused). Every badge has a dark rim and a mid-tone fill, so it stands out on
light taskbars (the rim) and dark ones (the fill), and its mark contrasts with its fill at 3:1 or
more (white on the darker fills, near-black on amber); tests/desktop_agent/test_icons.py checks
both at 16 and 32 px.

Drawn, not loaded from files, so every state has an icon at every size and the palette lives in
one place. Each shape is a signed distance (negative inside), turned into anti-aliased coverage
per pixel: Python arithmetic over 4,096 pixels (a few ms, only when the state changes) rather than
PIL.ImageDraw, which always loads Pillow's text support (FreeType, HarfBuzz, FriBiDi: 1.6 MiB of
RSS for icons that have no text).
"""

from __future__ import annotations

import math
from collections.abc import Callable

from PIL import Image

from desktop_agent.service import AgentState

RGB = tuple[int, int, int]
COLOURS: dict[str, RGB] = {
    "ok": (30, 140, 60),  # green
    "warning": (245, 166, 35),  # amber
    "critical": (214, 39, 40),  # red
    "paused": (60, 120, 210),  # blue: nothing is sent, by choice
    "unreachable": (128, 128, 128),  # grey: the server cannot be reached
}
KEYS = tuple(COLOURS)
OUTLINE: RGB = (32, 32, 32)
WHITE: RGB = (255, 255, 255)
# The mark's colour on each fill: whichever contrasts more.
MARK_COLOURS: dict[str, RGB] = {key: OUTLINE if key == "warning" else WHITE for key in COLOURS}
SIZE = 64

Distance = Callable[[float, float], float]


def icon_key(state: AgentState) -> str:
    """Which icon the state shows: paused first (a choice of the person), then grey until the
    server answers, then the local health."""
    if state.paused:
        return "paused"
    if state.connected is not True or state.sample is None:
        return "unreachable"
    return state.sample.health.status or "unreachable"  # no sensor readable: nothing measured, grey


def _segment(ax: float, ay: float, bx: float, by: float, half_width: float) -> Distance:
    """A stroke from a to b with round ends (a capsule)."""
    dx, dy = bx - ax, by - ay
    length2 = dx * dx + dy * dy

    def distance(x: float, y: float) -> float:
        t = max(0.0, min(1.0, ((x - ax) * dx + (y - ay) * dy) / length2))
        return math.hypot(x - ax - t * dx, y - ay - t * dy) - half_width

    return distance


def _disc(cx: float, cy: float, radius: float) -> Distance:
    return lambda x, y: math.hypot(x - cx, y - cy) - radius


def _union(*parts: Distance) -> Distance:
    return lambda x, y: min(part(x, y) for part in parts)


def _mark(key: str) -> Distance:
    """The state's mark on a unit square (0..1 both ways, y down), scaled by the caller."""
    stroke = 0.075  # half the stroke width: bold enough to survive 16 px
    if key == "ok":
        return _union(_segment(0.28, 0.52, 0.44, 0.68, stroke), _segment(0.44, 0.68, 0.73, 0.34, stroke))
    if key == "warning":
        return _union(_segment(0.5, 0.24, 0.5, 0.56, stroke), _disc(0.5, 0.75, stroke * 1.15))
    if key == "critical":
        return _union(_segment(0.32, 0.32, 0.68, 0.68, stroke), _segment(0.68, 0.32, 0.32, 0.68, stroke))
    if key == "paused":
        return _union(_segment(0.36, 0.3, 0.36, 0.7, stroke), _segment(0.64, 0.3, 0.64, 0.7, stroke))
    if key == "unreachable":
        return _segment(0.3, 0.7, 0.7, 0.3, stroke)
    raise ValueError(f"no icon for {key!r}")


def _coverage(distance: float) -> float:
    """How much of a pixel a shape covers, from the distance of its centre to the edge."""
    return max(0.0, min(1.0, 0.5 - distance))


def draw_icon(key: str, *, size: int = SIZE) -> Image.Image:
    """The badge for `key` (one of KEYS) on a transparent square of `size` pixels."""
    fill, mark_colour = COLOURS[key], MARK_COLOURS[key]
    centre = size / 2
    outer = size / 2 - max(0.5, size / 32)  # the disc's edge, a hair from the border
    rim = max(1.0, size / 20)
    mark = _mark(key)
    pixels = bytearray()
    for row in range(size):
        y = row + 0.5
        for column in range(size):
            x = column + 0.5
            d = math.hypot(x - centre, y - centre) - outer
            alpha = _coverage(d)
            if alpha <= 0.0:
                pixels += b"\0\0\0\0"
                continue
            inside = _coverage(d + rim)  # 1 inside the rim, 0 on it
            on_mark = _coverage(mark(x / size, y / size) * size) * inside
            colour = [
                (o * (1 - inside) + f * inside) * (1 - on_mark) + m * on_mark
                for o, f, m in zip(OUTLINE, fill, mark_colour)
            ]
            pixels += bytes([*(round(c) for c in colour), round(alpha * 255)])
    return Image.frombytes("RGBA", (size, size), bytes(pixels))
