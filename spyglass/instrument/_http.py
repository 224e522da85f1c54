"""What the outbound-HTTP instrumentations share: one CLIENT span per request, W3C
``traceparent``/``tracestate``/``baggage`` injected (never over headers the app set itself),
URLs scrubbed of credentials and secret parameters, and no second span when one library
runs on another (requests on urllib3 on http.client): the outermost one traces.

Nothing is traced on spyglass's own threads (``suppressed``) or to its own endpoint.
"""
import contextvars

from ._calls import REMOTE, Calls
from ..trace import propagation
from ..trace.context import get_active_scope, suppressed
from ..trace.span import CLIENT

# True while an outbound request is traced: libraries below it record nothing.
_in_request = contextvars.ContextVar("spyglass.http.in_request", default=False)
_HEADERS = frozenset((propagation.TRACEPARENT, propagation.TRACESTATE, propagation.BAGGAGE))


class OutboundHTTP:
    def __init__(self, agent, timing_key):
        from ..errors.scrub import Scrubber

        self.calls = Calls(agent, timing_key, REMOTE)
        self.own_endpoint = agent.config.endpoint
        self.scrubber = Scrubber(extra_keys=agent.config.scrub_keys)

    def start(self, method, url, headers=None):
        """The span of a request about to go out (and the token to pass to ``finish``), or
        None: no active span, a library above already traces it, or it is spyglass's own.
        Injects the trace context into ``headers`` (a mutable mapping) when given."""
        scope = get_active_scope()
        if scope is None or _in_request.get() or suppressed.get():
            return None
        try:
            url = str(url)
            if url.startswith(self.own_endpoint):
                return None
            method = str(method.decode() if isinstance(method, bytes) else method).upper()
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
            if headers is not None:
                inject(headers, span)
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
            if error is not None:
                span.attributes["error.type"] = type(error).__qualname__
            self.calls.finish(span, error)
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


def inject(headers, span):
    """Write the trace context into ``headers``, leaving any of the three headers the app
    set itself as it is."""
    present = {str(key).lower() for key in headers.keys()} & _HEADERS
    context = span.context
    fresh = {}
    propagation.inject(fresh, context.trace_id, context.span_id, context.sampled,
                       context.tracestate, context.baggage, context.random_trace_id)
    for name, value in fresh.items():
        if name not in present:
            headers[name] = value


def _host_and_port(url):
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        return parts.hostname, parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    except ValueError:
        return None, None
