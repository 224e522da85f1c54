"""W3C Trace Context and W3C Baggage on the wire: pure functions, stdlib only.

Text headers (https://www.w3.org/TR/trace-context-2/, https://www.w3.org/TR/baggage/),
by Trace Context Level 2 (the editor's draft):

- ``traceparent``: ``00-<trace id>-<parent id>-<flags>``; anything invalid reads as absent.
  Of the flags, ``sampled`` (0x01) and ``random-trace-id`` (0x02) are read and written;
  the others are reserved, and written as zero.
- ``tracestate``: vendor entries, kept in order; an invalid member or more than 32 discard
  the whole header. A key repeated keeps its first (leftmost) entry: the spec lets a
  vendor discard duplicates it did not write, and forbids sending one.
- ``baggage``: ``key=value`` pairs, percent-encoded values; an invalid member is skipped
  on its own.

Carriers are read case-insensitively: a mapping (``dict``, ``email.message.Message``,
requests/httpx/werkzeug headers, a WSGI environ) or an iterable of ``(name, value)``
pairs (an ASGI scope's ``headers``, ``bytes`` allowed). A value may be a string or a
list of strings; several values of one header are combined as if joined by ``,``.

Binary (OpenTracing ``Format.BINARY``) follows the W3C trace-context-binary draft
layout, plus a baggage field of our own (id 3).

Malformed header values never raise (they read as absent); carrier keys must be
``str`` or ``bytes``. The formatting functions raise ``ValueError`` only for ids, or an
own tracestate entry, that cannot be put on the wire.
"""
from __future__ import annotations

import re
import struct
from collections import namedtuple
from typing import Iterable, Mapping, MutableMapping, Sequence, Union

from ..lazy_re import LazyRegex

__all__ = [
    "SAMPLED",
    "RANDOM_TRACE_ID",
    "TraceParent",
    "Extracted",
    "parse_traceparent",
    "format_traceparent",
    "parse_tracestate",
    "format_tracestate",
    "parse_baggage",
    "format_baggage",
    "extract",
    "extract_baggage",
    "inject",
    "to_binary",
    "from_binary",
]

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
BAGGAGE = "baggage"

# Optional whitespace (RFC 7230 OWS): spaces and horizontal tabs.
_OWS = " \t"

# ---------------------------------------------------------------- traceparent

_TRACEPARENT_LENGTH = 55  # version 00: 2 + 1 + 32 + 1 + 16 + 1 + 2
_TRACEPARENT_FIELDS = LazyRegex(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
_MAX_TRACE_ID = 1 << 128
_MAX_SPAN_ID = 1 << 64

# Builds a namedtuple from a tuple without going through its Python-level __new__
# (what namedtuple's own _make does); extract runs on every request.
_new_tuple = tuple.__new__


SAMPLED = 0x01
RANDOM_TRACE_ID = 0x02  # at least the trace id's right-most 7 bytes are random


# trace_id: 128-bit, never 0; span_id: 64-bit, never 0; flags: SAMPLED, RANDOM_TRACE_ID,
# other bits kept, not interpreted. (collections' namedtuple, not typing's: with this
# module's string annotations typing's compiles each field's, a fifth of a millisecond
# of the import, which every web app pays when its first library is instrumented.)
TraceParent = namedtuple("TraceParent", ("trace_id", "span_id", "flags"))


def parse_traceparent(value: str) -> TraceParent | None:
    """Parse a ``traceparent`` header; None when it is absent or invalid.

    A version above 00 is read by the version-00 layout of its first 55 characters,
    provided anything after them starts with ``-`` (the spec's forward compatibility).
    """
    fields = _traceparent_fields(value)
    return None if fields is None else _new_tuple(TraceParent, fields)


def _traceparent_fields(value: str) -> tuple[int, int, int] | None:
    if not isinstance(value, str):
        return None
    value = value.strip(_OWS)
    size = len(value)
    if size != _TRACEPARENT_LENGTH and (
        size < _TRACEPARENT_LENGTH or value[_TRACEPARENT_LENGTH] != "-" or value.startswith("00")
    ):
        return None
    fields = _TRACEPARENT_FIELDS.fullmatch(value, 0, _TRACEPARENT_LENGTH)
    if fields is None or fields[1] == "ff":
        return None
    trace_id = int(fields[2], 16)
    span_id = int(fields[3], 16)
    if not trace_id or not span_id:
        return None
    return trace_id, span_id, int(fields[4], 16)


def format_traceparent(trace_id: int, span_id: int, sampled: bool,
                       random_trace_id: bool = False) -> str:
    """Format a version-00 ``traceparent``; ValueError for ids that are 0 or too wide.

    ``random_trace_id``: the trace id's right-most 7 bytes are random (a trace we
    started), or the trace came with the flag set; it must be carried as it came.
    """
    _check_ids(trace_id, span_id)
    flags = (SAMPLED if sampled else 0) | (RANDOM_TRACE_ID if random_trace_id else 0)
    return f"00-{trace_id:032x}-{span_id:016x}-{flags:02x}"


def _check_ids(trace_id: int, span_id: int) -> None:
    if not (0 < trace_id < _MAX_TRACE_ID and 0 < span_id < _MAX_SPAN_ID):
        raise ValueError(f"invalid trace context ids: trace_id={trace_id!r}, span_id={span_id!r}")


# ----------------------------------------------------------------- tracestate

_TRACESTATE_MAX_MEMBERS = 32
_TRACESTATE_MAX_LENGTH = 512
_TRACESTATE_LONG_MEMBER = 128  # truncation drops members longer than this first

# key = ( lcalpha / DIGIT ) 0*255 ( keychar ), keychar = lcalpha / DIGIT / _ - * / @
# (Level 2: '@' anywhere after the first character, 256 characters in all).
_TRACESTATE_KEY = r"[a-z0-9][a-z0-9_\-*/@]{0,255}"
# Printable ASCII except ',' and '=', 1..256 characters, no trailing space.
_TRACESTATE_VALUE = r"[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]"
_TRACESTATE_MEMBER = LazyRegex(rf"({_TRACESTATE_KEY})=({_TRACESTATE_VALUE})")
_TRACESTATE_MEMBER_OWS = LazyRegex(rf"[ \t]*({_TRACESTATE_KEY})=({_TRACESTATE_VALUE})[ \t]*")


def parse_tracestate(value: str | Sequence[str] | None) -> tuple[tuple[str, str], ...] | None:
    """Parse ``tracestate`` into ``((key, value), ...)``, in header order.

    None when the header is absent or invalid: an invalid member or more than 32 members
    discard it whole. Empty members are ignored (and not counted). A repeated key keeps
    its first entry only (the duplicates still count towards the 32).
    """
    text = _joined(value)
    if text is None:
        return None
    entries = []
    for member in text.split(","):
        parsed = _TRACESTATE_MEMBER_OWS.fullmatch(member)
        if parsed is not None:
            entries.append((parsed[1], parsed[2]))
        elif member.strip(_OWS):
            return None
    if len(entries) > _TRACESTATE_MAX_MEMBERS:
        return None
    if len(entries) > 1 and len({key for key, _ in entries}) != len(entries):
        return _first_of_each_key(entries)
    return tuple(entries)


def _first_of_each_key(entries: list[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    seen = set()
    kept = []
    for key, value in entries:
        if key not in seen:
            seen.add(key)
            kept.append((key, value))
    return tuple(kept)


def format_tracestate(
    entries: Sequence[tuple[str, str]], key: str | None = None, value: str | None = None
) -> str:
    """Format ``tracestate``, optionally putting ``key=value`` first (our own entry).

    The given key's old entry is replaced; invalid or duplicate entries are left out, so
    the result is always a valid header. Beyond 32 members the rightmost are dropped;
    beyond 512 characters members longer than 128 go first (from the right), then the
    rightmost. ValueError when ``key``/``value`` themselves are invalid.
    """
    members = []
    seen = set()
    if key is not None:
        own = f"{key}={value}"
        if not isinstance(value, str) or _TRACESTATE_MEMBER.fullmatch(own) is None:
            raise ValueError(f"invalid tracestate entry: {own!r}")
        members.append(own)
        seen.add(key)
    for entry_key, entry_value in entries:
        if entry_key in seen:
            continue
        member = f"{entry_key}={entry_value}"
        if _TRACESTATE_MEMBER.fullmatch(member) is None:
            continue
        members.append(member)
        seen.add(entry_key)
    del members[_TRACESTATE_MAX_MEMBERS:]
    _truncate_tracestate(members)
    return ",".join(members)


def _truncate_tracestate(members: list[str]) -> None:
    """Drop members until the joined header fits in 512 characters (spec's order)."""
    length = _joined_length(members)
    for index in range(len(members) - 1, -1, -1):
        if length <= _TRACESTATE_MAX_LENGTH:
            return
        if len(members[index]) > _TRACESTATE_LONG_MEMBER:
            del members[index]
            length = _joined_length(members)
    while length > _TRACESTATE_MAX_LENGTH:
        members.pop()
        length = _joined_length(members)


def _joined_length(members: list[str]) -> int:
    return sum(map(len, members)) + max(len(members) - 1, 0)


# -------------------------------------------------------------------- baggage

_BAGGAGE_MAX_MEMBERS = 64
_BAGGAGE_MAX_BYTES = 8192

# RFC 7230 token.
_TOKEN_CHARS = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]"
_TOKEN = LazyRegex(rf"{_TOKEN_CHARS}+")
# baggage-octet: printable ASCII except space, '"', ',', ';' and '\'.
_BAGGAGE_OCTETS = "".join(c for c in map(chr, range(0x21, 0x7F)) if c not in '",;\\')
# key OWS "=" OWS value, then properties, which are accepted and ignored.
_BAGGAGE_MEMBER = LazyRegex(
    rf"[ \t]*({_TOKEN_CHARS}+)[ \t]*=[ \t]*([{re.escape(_BAGGAGE_OCTETS)}]*)[ \t]*(?:;.*)?",
    re.DOTALL,
)
# What a value may carry unencoded: every baggage-octet but '%', the escape itself.
_BAGGAGE_SAFE = _BAGGAGE_OCTETS.replace("%", "")
# A member whose key is a token and whose value needs no encoding.
_BAGGAGE_PLAIN_MEMBER = LazyRegex(rf"({_TOKEN_CHARS}+)=[{re.escape(_BAGGAGE_SAFE)}]*")
# urllib.parse's quote/unquote do the same, at twice the cost; these run per request.
_ESCAPE_OF_BYTE = [chr(b) if chr(b) in _BAGGAGE_SAFE else f"%{b:02X}" for b in range(256)]
_HEX_DIGITS = "0123456789abcdefABCDEF"
# An escape's two digits -> its byte; made at the first escape decoded (a fifth of a
# millisecond that most processes never need).
_byte_of_escape = {}


def _escapes():
    _byte_of_escape.update((a + b, bytes.fromhex(a + b)) for a in _HEX_DIGITS for b in _HEX_DIGITS)
    return _byte_of_escape


def parse_baggage(value: str | Sequence[str] | None) -> dict[str, str]:
    """Parse ``baggage`` into ``{key: value}``, values percent-decoded (UTF-8).

    Properties (``;prop``) are accepted and ignored. An invalid member is skipped, not
    the whole header. At most 64 members are read; a repeated key keeps its last value.
    """
    text = _joined(value)
    items: dict[str, str] = {}
    if not text:
        return items
    for member in text.split(",", _BAGGAGE_MAX_MEMBERS)[:_BAGGAGE_MAX_MEMBERS]:
        parsed = _BAGGAGE_MEMBER.fullmatch(member)
        if parsed is not None:
            raw = parsed[2]
            items[parsed[1]] = _percent_decode(raw) if "%" in raw else raw
    return items


def format_baggage(items: Mapping[str, str]) -> str:
    """Format ``baggage`` from ``{key: value}``; always a valid header, possibly empty.

    Values are percent-encoded (UTF-8) where the grammar requires it, and only there.
    Keys that are not HTTP tokens are left out, as are members beyond 64 or that would
    push the header past 8192 bytes.
    """
    members = []
    size = 0
    for key, value in items.items():
        if len(members) == _BAGGAGE_MAX_MEMBERS:
            break
        if not isinstance(key, str):
            continue
        member = f"{key}={value}"
        plain = _BAGGAGE_PLAIN_MEMBER.fullmatch(member)  # usually so, and at one regex
        if plain is None or plain.end(1) != len(key):  # (a key with '=' would shift it)
            if _TOKEN.fullmatch(key) is None:
                continue
            member = f"{key}={_percent_encode(str(value))}"
        grown = size + len(member) + (1 if members else 0)
        if grown > _BAGGAGE_MAX_BYTES:
            continue
        members.append(member)
        size = grown
    return ",".join(members)


def _percent_encode(value: str) -> str:
    """UTF-8 percent-encoding of what a baggage value cannot carry as is."""
    return "".join(map(_ESCAPE_OF_BYTE.__getitem__, value.encode("utf-8", "replace")))


def _percent_decode(raw: str) -> str:
    """Decode %XX escapes as UTF-8 (malformed UTF-8 -> U+FFFD, a stray '%' kept).

    ``raw`` is a validated baggage value, hence ASCII.
    """
    chunks = raw.split("%")
    data = bytearray(chunks[0], "ascii")
    byte_of_escape = _byte_of_escape or _escapes()
    for chunk in chunks[1:]:
        byte = byte_of_escape.get(chunk[:2])
        if byte is None:
            data += b"%"
            data += chunk.encode("ascii")
        else:
            data += byte
            data += chunk[2:].encode("ascii")
    return data.decode("utf-8", "replace")


# ------------------------------------------------------------------- carriers


# trace_id: 128-bit; span_id: 64-bit, the remote parent's; sampled: a bool; tracestate:
# ((key, value), ...), () when absent or invalid, none in binary; baggage: {str: str};
# random_trace_id: the caller's flag, to be carried unchanged (False unless given).
Extracted = namedtuple("Extracted", ("trace_id", "span_id", "sampled", "tracestate", "baggage",
                                     "random_trace_id"), defaults=(False,))


Carrier = Union[Mapping, Iterable]

# Lowercased carrier key (text or bytes, as ASGI has it) -> header. WSGI spells a
# header HTTP_<NAME>; reading those too lets an environ copy serve as a carrier.
_HEADER_OF = {
    spelling: header
    for header in (TRACEPARENT, TRACESTATE, BAGGAGE)
    for name in (header, "http_" + header)
    for spelling in (name, name.encode("ascii"))
}
# Most carrier keys are ruled out by their length alone, without lowercasing a copy.
_HEADER_KEY_LENGTHS = frozenset(map(len, _HEADER_OF))
_HEADER_NAMES = frozenset((TRACEPARENT, TRACESTATE, BAGGAGE))
_HEADER_NAME_LENGTHS = frozenset(map(len, _HEADER_NAMES))
_ENVIRON_KEYS = (
    (TRACEPARENT, "HTTP_TRACEPARENT"),
    (TRACESTATE, "HTTP_TRACESTATE"),
    (BAGGAGE, "HTTP_BAGGAGE"),
)


def extract(carrier: Carrier) -> Extracted | None:
    """Read trace context and baggage; None when there is no valid ``traceparent``.

    Two ``traceparent`` values count as invalid. An invalid ``tracestate`` reads as
    ``()``. For baggage without a trace context, use :func:`extract_baggage`.
    """
    headers = _read_headers(carrier)
    parent = headers.get(TRACEPARENT)
    if parent is None:
        return None
    fields = _traceparent_fields(_single(parent))
    if fields is None:
        return None
    trace_id, span_id, flags = fields
    return _new_tuple(Extracted, (
        trace_id,
        span_id,
        bool(flags & SAMPLED),
        parse_tracestate(headers.get(TRACESTATE)) or (),
        parse_baggage(headers.get(BAGGAGE)),
        bool(flags & RANDOM_TRACE_ID),
    ))


def extract_baggage(carrier: Carrier) -> dict[str, str]:
    """Read only the baggage; ``{}`` when there is none."""
    return parse_baggage(_read_headers(carrier).get(BAGGAGE))


def inject(
    carrier: MutableMapping,
    trace_id: int,
    span_id: int,
    sampled: bool,
    tracestate: Sequence[tuple[str, str]] = (),
    baggage: Mapping[str, str] | None = None,
    random_trace_id: bool = False,
) -> None:
    """Write ``traceparent``, and ``tracestate``/``baggage`` when they have content.

    A header the carrier already holds under another casing is overwritten under that
    same key (and further casings of it removed), so it is never sent twice. Headers
    not written here are left as they are.
    """
    existing = _existing_keys(carrier)
    _put(carrier, existing, TRACEPARENT,
         format_traceparent(trace_id, span_id, sampled, random_trace_id))
    if tracestate:
        header = format_tracestate(tracestate)
        if header:
            _put(carrier, existing, TRACESTATE, header)
    if baggage:
        header = format_baggage(baggage)
        if header:
            _put(carrier, existing, BAGGAGE, header)


def _read_headers(carrier: Carrier) -> dict[str, object]:
    """Our three headers' raw values in any carrier, keyed by lowercase name.

    A value is as the carrier holds it (text, bytes or a list of them); a header met
    under several keys gets the list of all their values.
    """
    if isinstance(carrier, dict) and "wsgi.version" in carrier:
        # A WSGI environ: the server already upper-cased and comma-joined the headers.
        return {header: carrier[key] for header, key in _ENVIRON_KEYS if key in carrier}
    found: dict[str, object] = {}
    pairs = carrier.items() if hasattr(carrier, "items") else carrier
    for name, value in pairs:
        if len(name) in _HEADER_KEY_LENGTHS:
            header = _HEADER_OF.get(name.lower())
            if header is not None:
                previous = found.get(header)
                found[header] = value if previous is None else _as_list(previous) + _as_list(value)
    return found


def _as_list(value: object) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _text(value: object) -> str:
    """A header value as text; a value that is neither text nor bytes reads as empty."""
    if isinstance(value, str):
        return value
    if isinstance(value, (bytes, bytearray)):
        return value.decode("latin-1")
    return ""


def _single(value: object) -> str | None:
    """The one value of a header that must not repeat (traceparent), else None."""
    if isinstance(value, (list, tuple)):
        return _text(value[0]) if len(value) == 1 else None
    return _text(value)


def _joined(value: object) -> str | None:
    """All values of a list-valued header as one string; None when there are none."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)):
        return ",".join(map(_text, value)) if value else None
    return _text(value)


def _existing_keys(carrier: MutableMapping) -> dict[str, list[str]]:
    """Map each of our headers to the carrier keys that spell it, in any casing."""
    existing: dict[str, list[str]] = {}
    for key in carrier:
        if isinstance(key, str) and len(key) in _HEADER_NAME_LENGTHS:
            header = key.lower()
            if header in _HEADER_NAMES:
                existing.setdefault(header, []).append(key)
    return existing


def _put(carrier: MutableMapping, existing: dict[str, list[str]], header: str, value: str) -> None:
    keys = existing.get(header)
    if not keys:
        carrier[header] = value
        return
    carrier[keys[0]] = value
    for duplicate in keys[1:]:
        del carrier[duplicate]


# --------------------------------------------------------------------- binary

_BINARY_VERSION = 0
_FIELD_TRACE_ID, _FIELD_SPAN_ID, _FIELD_OPTIONS, _FIELD_BAGGAGE = 0, 1, 2, 3
_MASK_64 = (1 << 64) - 1
# version, 0, trace id (high, low), 1, span id, 2, options
_BINARY_CONTEXT = struct.Struct(">BBQQBQBB")
_BAGGAGE_FIELD = struct.Struct(">BH")


def to_binary(trace_id: int, span_id: int, sampled: bool, baggage: Mapping[str, str] | None,
              random_trace_id: bool = False) -> bytes:
    """Encode for ``Format.BINARY``: the W3C binary draft layout (its options byte holds
    the trace flags), baggage as field 3."""
    _check_ids(trace_id, span_id)
    data = _BINARY_CONTEXT.pack(
        _BINARY_VERSION,
        _FIELD_TRACE_ID, trace_id >> 64, trace_id & _MASK_64,
        _FIELD_SPAN_ID, span_id,
        _FIELD_OPTIONS, (SAMPLED if sampled else 0) | (RANDOM_TRACE_ID if random_trace_id else 0),
    )
    if baggage:
        text = format_baggage(baggage).encode("ascii")
        if text:
            data += _BAGGAGE_FIELD.pack(_FIELD_BAGGAGE, len(text)) + text
    return data


# Known field id -> fixed size of its payload (baggage is length-prefixed instead).
_BINARY_FIELD_SIZES = {_FIELD_TRACE_ID: 16, _FIELD_SPAN_ID: 8, _FIELD_OPTIONS: 1}


def from_binary(data: bytes | bytearray) -> Extracted | None:
    """Decode :func:`to_binary` output; None for anything short, garbled or not bytes.

    Fields are read in whatever order they come; reading stops at the first unknown
    field id, since its size cannot be known. Trace and span id are required.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        return None
    data = bytes(data)
    if not data or data[0] != _BINARY_VERSION:
        return None
    fields: dict[int, bytes] = {}
    position, end = 1, len(data)
    while position < end:
        field = data[position]
        position += 1
        if field == _FIELD_BAGGAGE:
            if position + 2 > end:
                return None
            size = int.from_bytes(data[position:position + 2], "big")
            position += 2
        elif field in _BINARY_FIELD_SIZES:
            size = _BINARY_FIELD_SIZES[field]
        else:
            break
        if position + size > end:
            return None
        fields[field] = data[position:position + size]
        position += size
    trace_id = int.from_bytes(fields.get(_FIELD_TRACE_ID, b""), "big")
    span_id = int.from_bytes(fields.get(_FIELD_SPAN_ID, b""), "big")
    if not trace_id or not span_id:
        return None
    options = fields.get(_FIELD_OPTIONS, b"\x00")[0]
    baggage = parse_baggage(fields.get(_FIELD_BAGGAGE, b"").decode("ascii", "replace"))
    return Extracted(trace_id, span_id, bool(options & SAMPLED), (), baggage,
                     bool(options & RANDOM_TRACE_ID))
