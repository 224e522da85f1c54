"""The schema of a stored error event: each field's type and limits, and how a sender's
value is made to fit.

An error event arrives as JSON written by a sender (spyglass's sensor writes the fields
named here; other senders may write anything), and the error page reads it back. So every
event is cleaned, on its way in and again on its way out (events stored by an older
collector): a field of the wrong type is coerced where that is unambiguous (a line number
sent as ``"42"``) and dropped where it is not (``request: [1, 2]``), texts and lists are cut
to their limits, and every number left is finite. Keys the schema does not name are kept,
made JSON-safe: the API shows them, no page reads them.
"""
import math

from .model import INT64_MAX, NON_FINITE_NAMES

MAX_TEXT = 32 * 1024  # messages and stack traces (the sensor sends at most 8 and 32 KiB)
MAX_NAME = 1024  # types, modules, functions, paths, fingerprints, source lines
MAX_FRAMES = 500
MAX_CONTEXT_LINES = 50  # pre_context / post_context lines per frame
MAX_LINKED = 50  # chained or grouped exceptions per exception
MAX_LINK_DEPTH = 8  # exceptions chained or grouped in exceptions chained or grouped
MAX_BREADCRUMBS = 200
MAX_KEYS = 500  # entries of a mapping (request, user, tags, contexts, vars, data)
MAX_DEPTH = 16  # nesting of any free-form value
#: Unix seconds a timestamp may be: 1970 up to the last instant an int64 of ns can hold.
MAX_TIMESTAMP = INT64_MAX / 1e9


def clean_event(event):
    """``event`` (any JSON value) as a dict that fits the schema: a new object, never raising."""
    if not isinstance(event, dict):
        return {"message": _text(event, MAX_TEXT) or ""}
    cleaned = {key: _json_safe(value) for key, value in _first(event.items(), MAX_KEYS) if key not in _TOP_LEVEL}
    cleaned.update(_exception(event))
    cleaned.update(_fields(event, _TOP_LEVEL_EXTRAS))
    return cleaned


# -- scalars -----------------------------------------------------------------------------

def _text(value, limit=MAX_NAME):
    """A string of at most ``limit`` characters; numbers and booleans as their text, ``None``
    for anything else."""
    if isinstance(value, str):
        return value if len(value) <= limit else value[: limit - 1] + "…"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return _text(NON_FINITE_NAMES.get(repr(value)) or repr(value), limit)
    return None


def _long_text(value):
    return _text(value, MAX_TEXT)


def _lineno(value):
    """A line number: a non-negative int (``"42"`` and ``42.0`` count), else ``None``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and value.strip().isdecimal() and len(value) < 20:
        value = int(value)
    elif isinstance(value, float) and value.is_integer():
        value = int(value)
    return value if isinstance(value, int) and 0 <= value <= INT64_MAX else None


def _flag(value):
    return value if isinstance(value, bool) else None


def _timestamp(value):
    """Unix seconds as a finite number within the range stores keep, or an ISO 8601 text."""
    if isinstance(value, str):
        return _text(value, 64)
    if isinstance(value, (int, float)) and not isinstance(value, bool) \
            and math.isfinite(value) and 0 <= value <= MAX_TIMESTAMP:
        return value
    return None


def _json_safe(value, depth=0):
    """Any JSON value with non-finite numbers as text, strings and containers cut to size."""
    if isinstance(value, str):
        return _text(value, MAX_TEXT)
    if isinstance(value, float):
        return value if math.isfinite(value) else NON_FINITE_NAMES[repr(value)]
    if value is None or isinstance(value, (bool, int)):
        return value
    if depth >= MAX_DEPTH:
        return None
    if isinstance(value, dict):
        return {str(key): _json_safe(item, depth + 1) for key, item in _first(value.items(), MAX_KEYS)}
    if isinstance(value, (list, tuple)):
        return [_json_safe(item, depth + 1) for item in value[:MAX_KEYS]]
    return _text(str(value), MAX_TEXT)


def _first(items, count):
    for index, item in enumerate(items):
        if index >= count:
            break
        yield item


# -- structures --------------------------------------------------------------------------

def _mapping(value):
    """A dict of free-form values (request, user, tags, contexts, a frame's vars); ``None``
    for anything but an object."""
    return _json_safe(value) if isinstance(value, dict) else None


def _text_list(value, count=MAX_CONTEXT_LINES):
    if not isinstance(value, list):
        return None
    return [_text(line, MAX_NAME) or "" for line in value[:count]]


def _fields(source, schema):
    """The fields of ``source`` that ``schema`` names, each cleaned; those that fail left out."""
    cleaned = {}
    for key, clean in schema.items():
        if key in source:
            value = clean(source[key])
            if value is not None:
                cleaned[key] = value
    return cleaned


_FRAME = {
    "filename": _text, "abs_path": _text, "module": _text, "function": _text, "lineno": _lineno,
    "in_app": _flag, "pre_context": _text_list, "context_line": _text, "post_context": _text_list,
    "vars": _mapping,
}


def _frames(value):
    if not isinstance(value, list):
        return None
    return [_fields(frame, _FRAME) for frame in value[-MAX_FRAMES:] if isinstance(frame, dict)]


_EXCEPTION = {"type": _text, "module": _text, "message": _long_text, "frames": _frames}


def _exception(source, depth=0):
    """type, module, message and frames, then chained and grouped exceptions, each cleaned."""
    cleaned = _fields(source, _EXCEPTION)
    linked = depth < MAX_LINK_DEPTH
    if isinstance(source.get("chain"), list):
        cleaned["chain"] = [{**_fields(link, {"relation": _text}), **_exception(link, depth + 1)}
                            for link in source["chain"][:MAX_LINKED] if isinstance(link, dict)] if linked else []
    if isinstance(source.get("group"), list):
        cleaned["group"] = [_exception(member, depth + 1) for member in source["group"][:MAX_LINKED]
                            if isinstance(member, dict)] if linked else []
    return cleaned


_BREADCRUMB = {"timestamp": _timestamp, "category": _text, "type": _text, "level": _text,
               "message": _long_text, "data": _mapping}


def _breadcrumbs(value):
    if not isinstance(value, list):
        return None
    return [_fields(crumb, _BREADCRUMB) for crumb in value[-MAX_BREADCRUMBS:] if isinstance(crumb, dict)]


_TOP_LEVEL_EXTRAS = {
    "fingerprint": _text, "handled": _flag, "level": _text, "timestamp": _timestamp, "event_id": _text,
    "stacktrace": _long_text, "request": _mapping, "user": _mapping, "tags": _mapping,
    "contexts": _mapping, "breadcrumbs": _breadcrumbs,
}
_TOP_LEVEL = frozenset(_EXCEPTION) | frozenset(_TOP_LEVEL_EXTRAS) | {"chain", "group"}
