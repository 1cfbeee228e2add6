"""The tray's badges, drawn from the state: each state has its own mark (not only its colour),
legible at 16 and 32 px on light and dark taskbars. (On a real tray host: test_tray.py.)"""

from __future__ import annotations

import pytest
from agent_helpers import which_mark
from PIL import Image

from desktop_agent.icons import COLOURS, KEYS, MARK_COLOURS, OUTLINE, draw_icon, icon_key
from desktop_agent.sampler import take_sample
from desktop_agent.service import AgentState

LIGHT_TASKBAR, DARK_TASKBAR = (240, 240, 240), (32, 32, 32)


def luminance(rgb: tuple[int, int, int]) -> float:
    """WCAG relative luminance."""

    def channel(c: int) -> float:
        c = c / 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(c) for c in rgb[:3])
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: tuple[int, int, int], b: tuple[int, int, int]) -> float:
    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def on(background: tuple[int, int, int], icon: Image.Image) -> Image.Image:
    canvas = Image.new("RGB", icon.size, background)
    canvas.paste(icon, mask=icon)
    return canvas


def test_which_icon_each_state_shows():
    sample = take_sample()
    assert icon_key(AgentState(sample=sample, connected=True)) == sample.health.status
    assert icon_key(AgentState(sample=sample, connected=False)) == "unreachable"
    assert icon_key(AgentState(connected=True)) == "unreachable"  # nothing measured yet
    assert icon_key(AgentState(sample=sample, connected=True, paused=True)) == "paused"  # the person's choice first


@pytest.mark.parametrize("size", [16, 32])
@pytest.mark.parametrize("background", [LIGHT_TASKBAR, DARK_TASKBAR], ids=["light", "dark"])
def test_each_mark_is_legible_without_colour(size, background):
    """Drawn at the size a taskbar uses, on its colour, each badge's mark (found by brightness
    alone) is its own state's, and clearly not another's."""
    for key in KEYS:
        icon = draw_icon(key, size=size)
        assert icon.size == (size, size) and icon.getpixel((0, 0))[3] == 0  # a transparent square
        # Upscaled as the eye would see it, then compared with the 64 px marks.
        found, scores = which_mark(on(background, icon).resize((64, 64), Image.Resampling.LANCZOS), background)
        runner_up = max(score for other, score in scores.items() if other != key)
        assert found == key, f"{key} at {size} px on {background} looks like {found}: {scores}"
        assert scores[key] - runner_up >= 0.1, scores


@pytest.mark.parametrize("background", [LIGHT_TASKBAR, DARK_TASKBAR], ids=["light", "dark"])
def test_each_badge_stands_out_and_its_mark_on_it(background):
    """WCAG's 3:1 for graphics: the badge against the taskbar (by its rim or its fill, whichever
    shows more) and the mark against the badge's fill."""
    for key in KEYS:
        assert max(contrast(COLOURS[key], background), contrast(OUTLINE, background)) >= 3, key
        assert contrast(MARK_COLOURS[key], COLOURS[key]) >= 3, key


def test_the_colours_are_really_drawn():
    for key, colour in COLOURS.items():
        pixels = draw_icon(key).get_flattened_data()
        assert sum(p == colour + (255,) for p in pixels) > 0.3 * 64 * 64, key  # mostly the fill
        assert sum(p == MARK_COLOURS[key] + (255,) for p in pixels) > 0.05 * 64 * 64, key  # and a mark
