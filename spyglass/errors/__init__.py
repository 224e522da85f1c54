"""Exceptions -> error events: frames, source, locals, the cause chain, the fingerprint
(``event``), and the pipeline that sends them (``capture``). What keeps secrets out of
them is ``spyglass.redact``."""

from .event import build_error_event, fingerprint_of, format_stacktrace, in_app

__all__ = ["build_error_event", "fingerprint_of", "format_stacktrace", "in_app"]
