"""Parsing of the short durations and instants the CLI, the API and the UI accept."""
import re
from datetime import datetime

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")


def parse_duration(text):
    """Seconds in ``text``: ``90`` (seconds), ``500ms``, ``15m``, ``1.5h``, ``7d``, ``2w``."""
    match = _DURATION.match(str(text))
    if not match:
        raise ValueError(f"not a duration: {str(text)[:40]!r} (use e.g. 30s, 15m, 2h, 7d)")
    number, unit = match.groups()
    return float(number) * _UNITS[unit or "s"]


def parse_instant(text):
    """Unix seconds from ``text``: a number of seconds, or an ISO 8601 date-time.

    A date-time without a zone is local time, as an HTML ``datetime-local`` input sends it.
    """
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(str(text).strip()).timestamp()
    except ValueError:
        raise ValueError(f"not a time: {str(text)[:40]!r} (use unix seconds or ISO 8601)") from None


def format_duration_ms(ms):
    """A human duration for a number of milliseconds: ``850µs``, ``12.3ms``, ``4.20s``."""
    if not isinstance(ms, (int, float)) or ms != ms:  # None, NaN, or not a number at all
        return "-"
    if ms < 1:
        return f"{ms * 1000:.0f}µs"
    if ms < 1000:
        return f"{ms:.1f}ms" if ms < 100 else f"{ms:.0f}ms"
    if ms < 60000:
        return f"{ms / 1000:.2f}s"
    return f"{ms / 60000:.1f}min"
