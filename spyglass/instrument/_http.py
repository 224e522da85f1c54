"""What the outbound-HTTP instrumentations share: one CLIENT span per request, W3C
``traceparent``/``tracestate``/``baggage`` injected (never over headers the app set itself),
URLs scrubbed of credentials and secret parameters, and no second span when one library
runs on another (requests on urllib3 on http.client): the outermost one traces.

Outside any trace a request is timed (a trace of its own if slow or failed) and carries
nothing. Nothing is traced on spyglass's own threads (``suppressed``) or to its own endpoint.

The app's requests change by the three headers and nothing else (docs/Telemetry.md says what
an app can see). When no span starts, no header object is read, copied or replaced. When one
does, the context goes either into a copy of the app's headers of their own type (urllib3,
http.client: those objects are often shared, between threads or as a default argument) or
into the library's own per-request object for the duration of the send, taken out after it
(requests, httpx: hooks and redirects see what goes out, and a request object sent twice
carries each send's own context).
"""
import contextvars
import copy

from ._calls import OUTSIDE, REMOTE, CallRecorder, metric_recorder
from ..trace import propagation
from ..trace.context import get_active_scope, suppressed
from ..trace.span import CLIENT

# True while an outbound request is traced: libraries below it record nothing.
_in_request = contextvars.ContextVar("spyglass.http.in_request", default=False)
_HEADERS = frozenset((propagation.TRACEPARENT, propagation.TRACESTATE, propagation.BAGGAGE))
# The methods the metric names; any other is "_OTHER" there (OpenTelemetry's rule: an app's
# own methods must not make series without bound).
KNOWN_METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS",
                           "TRACE", "PATCH", "QUERY"))


class OutboundHTTP:
    """One HTTP client library's outbound requests: their spans, the context they carry."""

    def __init__(self, agent, timing_key):
        self.calls = CallRecorder(agent, timing_key, REMOTE)
        self.own_endpoint = agent.config.endpoint
        self.scrubber = agent.scrubber
        self.metric = metric_recorder("record_http_client")

    @classmethod
    def setup_for(cls, timing_key):
        """The ``setup(agent, module)`` of an instrumentation that needs one of these."""
        return lambda agent, module: cls(agent, timing_key)

    def sending(self, method, url):
        """``with http.sending(method, url) as call:`` around one request (see Sending)."""
        return Sending(self, method, url)

    def start(self, method, url):
        """The span of a request about to go out (with the token ``finish`` takes), or None:
        a library above already traces it, or it is spyglass's own. Outside any trace the
        span is ``OUTSIDE``'s (see ``_calls``): it carries no context."""
        if _in_request.get() or suppressed.get():
            return None
        try:
            url = str(url)
            if url.startswith(self.own_endpoint):
                return None
            method = str(method.decode() if isinstance(method, bytes) else method).upper()
            scope = get_active_scope()
            if scope is None:  # timed, and a trace of its own if slow or failed
                span = self.calls.start_outside(method)
            else:
                parent = scope.span
                span = parent._tracer.start_child(method, CLIENT, parent)
            attributes = span.attributes
            attributes["http.request.method"] = method
            attributes["url.full"] = self.scrubber.url(url)
            host, port = _host_and_port(url)
            if host:
                attributes["server.address"] = host
            if port:
                attributes["server.port"] = port
            return span, _in_request.set(True)
        except Exception:
            self.calls.failed()
            return None

    def finish(self, started, status=None, error=None):
        if started is None:
            return
        span, token = started
        if token is not None:
            self.release(started)
        try:
            if status is not None:
                span.attributes["http.response.status_code"] = int(status)
                if int(status) >= 500:
                    span.mark_error(f"HTTP {int(status)}")
                    # OpenTelemetry's rule: a failure told by the status names it as error.type
                    span.attributes["error.type"] = str(int(status))
            if error is not None:
                span.attributes["error.type"] = type(error).__qualname__
            self.calls.finish(span, error)
            if self.metric is not None:
                self.count(span, status, error)
        except Exception:
            self.calls.failed()

    def count(self, span, status, error):
        """``http.client.request.duration``: method, server, status class (as the server's
        metric), ``error.type`` (the exception's type when no response came, the status of a
        5xx); never the URL's path."""
        attributes = span.attributes
        method = attributes["http.request.method"]
        self.metric(method if method in KNOWN_METHODS else "_OTHER",
                    attributes.get("server.address"), attributes.get("server.port"),
                    None if status is None else int(status),
                    _error_type(status, error),
                    (span.end_ns - span.start_ns) / 1e9)

    def with_context(self, started, headers):
        """A copy of the app's ``headers``, of their own type and with every field (repeated
        ones too), plus the trace context; None when no such copy can be made (then the app's
        headers go out as they are)."""
        if started[0].local is OUTSIDE:
            return None
        try:
            outgoing = copy_headers(headers)
            if outgoing is not None:
                inject(outgoing, started[0])
            return outgoing
        except Exception:
            self.calls.failed()
            return None

    def add_context(self, started, headers):
        """The trace context written into ``headers`` in place; returns what was added, for
        ``remove_context``."""
        try:
            return inject(headers, started[0])
        except Exception:
            self.calls.failed()
            return {}

    def remove_context(self, headers, added):
        """Take out what ``add_context`` added, where it is still as added."""
        try:
            for name, value in added.items():
                if headers.get(name) == value:
                    del headers[name]
        except Exception:
            self.calls.failed()

    @staticmethod
    def release(started):
        """Stop holding off the libraries below (before ``finish``, for a span that stays
        open across calls, as http.client's from request to getresponse); returns what
        ``finish`` takes."""
        span, token = started
        if token is not None:
            try:
                _in_request.reset(token)
            except (ValueError, RuntimeError):  # another context, or already reset
                pass
        return span, None


def _error_type(status, error):
    if status is not None:
        return str(int(status)) if int(status) >= 500 else None
    return None if error is None else type(error).__qualname__


class Sending:
    """One outbound request, ``with http.sending(method, url) as call:`` around its send: its
    span started on the way in (``call.started`` is None when nothing is traced: no active
    span, a library above traces it, spyglass's own), ended on the way out with
    ``call.status``, and the exception that left the block, if one did. ``call.in_place(headers)``
    puts the context into the library's own per-request headers for the send and takes it
    out on the way out; ``call.copy_of(headers)`` gives a copy of the app's with it."""

    __slots__ = ("http", "started", "status", "_headers", "_added")

    def __init__(self, http, method, url):
        self.http = http
        self.started = http.start(method, url)
        self.status = None
        self._headers = None

    def in_place(self, headers):
        if self.started is not None:
            self._added = self.http.add_context(self.started, headers)
            self._headers = headers

    def copy_of(self, headers):
        """``headers`` copied with the context, or None (nothing traced, or no copy could
        be made: the app's go out as they are)."""
        if self.started is None:
            return None
        return self.http.with_context(self.started, headers)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, traceback):
        started = self.started
        if started is None:
            return False
        http = self.http
        if self._headers is not None:
            http.remove_context(self._headers, self._added)
        # A status set before an exception is the response's (aiohttp's raise_for_status);
        # a cancelled send (asyncio) ends its span too, and lets the libraries below trace
        # again in a task that goes on.
        http.finish(started, self.status, exc if isinstance(exc, Exception) else None)
        return False


def inject(headers, span):
    """Write the trace context into ``headers``, leaving any of the three headers the app
    set itself as it is; returns the headers written (name -> value)."""
    if span.local is OUTSIDE:  # outside any trace: the app's request goes as it is
        return {}
    present = {str(key).lower() for key in headers.keys()} & _HEADERS
    context = span.context
    fresh = {}
    propagation.inject(fresh, context.trace_id, context.span_id, context.sampled,
                       context.tracestate, context.baggage, context.random_trace_id)
    added = {}
    for name, value in fresh.items():
        if name not in present:
            headers[name] = added[name] = value
    return added


def copy_headers(headers):
    """``headers`` copied as their own type with every field, repeated ones included
    (urllib3's ``HTTPHeaderDict``, requests' ``CaseInsensitiveDict``, httpx's ``Headers``,
    ``email.message.Message``, dict and its kin), or None when no such copy can be made."""
    kind = type(headers)
    if kind is dict:
        return headers.copy()
    try:
        duplicate = headers.copy()
    except Exception:
        duplicate = None
    if type(duplicate) is not kind:  # no copy(), or one of another type (a dict subclass)
        try:
            # Deep: a shallow copy of a Message shares its list of fields with the app's.
            duplicate = copy.deepcopy(headers)
        except Exception:
            return None
    return duplicate if type(duplicate) is kind else None


def _host_and_port(url):
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        return parts.hostname, parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    except ValueError:
        return None, None
