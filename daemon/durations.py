"""Durations as operators write them: ``10836``, ``0.5``, ``90s``, ``3.01h``."""

from __future__ import annotations

import math
import re

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h)?\s*")


def parse_duration(text: str) -> float:
    """Seconds in `text`; raises ValueError with the accepted forms."""
    match = _DURATION.fullmatch(text)
    if match is None:
        raise ValueError(
            f"{text!r} is not a duration: give seconds (10836, 0.5) "
            "or a number with ms, s, m or h (90s, 3.01h)"
        )

    number, unit = match.groups()
    seconds = float(number) * _UNITS[unit or "s"]
    if not math.isfinite(seconds):
        raise ValueError(f"{text!r} is too large a duration")
    return seconds


def format_duration(seconds: float) -> str:
    """A short human form for logs: 10836 -> '3h0m36s', 0.25 -> '250ms'."""
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"

    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"
