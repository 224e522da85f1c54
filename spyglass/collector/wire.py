"""From an HTTP request's headers and body to the bytes of an OTLP message, or a refusal.

Everything here runs before anything is stored: a refusal means nothing of the request
is kept. Bodies are bounded twice, as sent and once inflated, so a small gzip bomb gets
the same 413 as a large body.
"""
import zlib

JSON = "application/json"
PROTOBUF = "application/x-protobuf"
_CONTENT_TYPES = {JSON: JSON, PROTOBUF: PROTOBUF, "application/protobuf": PROTOBUF}


class BadRequest(Exception):
    """A request the collector refuses: ``status`` is the HTTP status, ``reason`` says why."""

    def __init__(self, status, reason):
        super().__init__(reason)
        self.status = status
        self.reason = reason


def content_format(content_type):
    """``JSON`` or ``PROTOBUF`` for a Content-Type header; 415 for anything else."""
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    try:
        return _CONTENT_TYPES[media_type]
    except KeyError:
        raise BadRequest(415, f"unsupported content type {media_type or '(none)'!r}: "
                              f"send {JSON} or {PROTOBUF}") from None


def inflate(body, content_encoding, max_bytes):
    """``body`` decoded per its Content-Encoding (gzip, deflate or none), at most ``max_bytes``."""
    encoding = (content_encoding or "identity").strip().lower()
    if encoding in ("identity", ""):
        return body
    if encoding not in ("gzip", "x-gzip", "deflate"):
        raise BadRequest(415, f"unsupported content encoding {encoding!r}: send gzip or none")
    window = 16 + zlib.MAX_WBITS if encoding != "deflate" else zlib.MAX_WBITS
    inflater = zlib.decompressobj(window)
    try:
        data = inflater.decompress(body, max_bytes + 1)
    except zlib.error as exc:
        raise BadRequest(400, f"body is not valid {encoding}: {exc}") from None
    if len(data) > max_bytes:
        raise BadRequest(413, f"body inflates to more than {max_bytes} bytes")
    if not inflater.eof:
        raise BadRequest(400, f"body is truncated {encoding}")
    return data
