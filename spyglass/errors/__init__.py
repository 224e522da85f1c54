"""Exceptions -> error events, and the scrubbing that keeps secrets in the process."""

from .event import build_error_event, fingerprint_of, format_stacktrace, in_app
from .scrub import DEFAULT_SECRET_HEADERS, DEFAULT_SECRET_KEYS, FILTERED, Scrubber

__all__ = [
    "DEFAULT_SECRET_HEADERS", "DEFAULT_SECRET_KEYS", "FILTERED", "Scrubber",
    "build_error_event", "fingerprint_of", "format_stacktrace", "in_app",
]
