"""A traceback as text that may leave the process (a span's ``exception.stacktrace``, an
error event's): ``traceback``'s own text, scrubbed as free text, capped in the middle."""
from .scrub import Scrubber

MAX_STACKTRACE = 32 * 1024

DEFAULT_SCRUBBER = Scrubber()


def format_stacktrace(exc, *, scrubber=None, limit=MAX_STACKTRACE, message=True):
    """``traceback.format_exception`` text, scrubbed, at most ``limit`` characters;
    ``message`` False: the frames and the exception's type only (a library whose errors
    quote the app's data: a memcached client's name the key).

    When cut, the head and the tail are kept: the tail holds the innermost
    frames and the message, the part read first.
    """
    scrubber = scrubber or DEFAULT_SCRUBBER
    try:
        import traceback  # already loaded in practice (logging imports it)
        if message:
            text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        else:
            text = "".join(["Traceback (most recent call last):\n",
                            *traceback.format_tb(exc.__traceback__), _type_name(exc), "\n"])
        return scrubber.text(cap_middle(text, limit))
    except Exception:
        return f"{_type_name(exc)}: {scrubber.text(_message(exc))}" if message else _type_name(exc)


def cap_middle(text, limit):
    """``text`` at most ``limit`` characters: its head and its tail, a marker between."""
    if len(text) <= limit:
        return text
    marker = f"\n... [{len(text) - limit} characters cut] ...\n"
    keep = max(0, limit - len(marker))
    head = keep // 4
    return text[:head] + marker + text[len(text) - (keep - head):]


def _type_name(exc):
    try:
        return type(exc).__qualname__
    except Exception:
        return "BaseException"


def _message(exc):
    try:
        return str(exc)
    except Exception:
        return "<exception str() failed>"
