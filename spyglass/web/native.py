"""The request lifecycle for servers that are neither WSGI nor ASGI and hand each request
to the app as an object of their own (aiohttp's server, Tornado).

The instrumentation reads what the server knows into ``begin(...)`` (or ``start``), which
returns a ``ServedRequest`` with its SERVER span started (continuing the W3C context of the
incoming headers), then runs the handler inside it, as the WSGI and ASGI adapters do::

    request = native.begin(kind, raw, read)  # read(raw): method, path, headers, scheme, …
    with request:                   # an exception: fail(exc), then re-raised
        response = await handler(...)
    request.status_code = ...; request.route = ...; request.finish()

``headers`` is the server's own case-insensitive mapping (aiohttp's ``CIMultiDictProxy``,
Tornado's ``HTTPHeaders``): read, never changed.
"""
from . import METHODS, RequestTrace, error_block, host_only
from .. import agent as agent_module
from ..errors.scope import current_request
from ..trace.context import suppressed

TRACEPARENT = "traceparent"
_get_agent = agent_module.get


class ServedRequest(RequestTrace):
    """A request a server handed over as its own object: what error events tell of it."""

    raw = None              # the server's own request object
    headers = ()
    query = ""
    scheme = "http"
    host = ""
    client = None

    def describe(self, scrubber):
        return error_block(self, scrubber, f"{self.scheme}://{self.host}{self.path}", self.query,
                           list(self.headers.items()), self.client)


def begin(kind, raw, read):
    """A ``kind`` (a ServedRequest) for the request the server handed over as ``raw``, its
    span started, or None when it is not to be traced (no agent, spyglass's own thread, an
    outer layer traces it already, an ignored path, an error of ours). ``read(raw)`` gives
    ``start``'s arguments from ``method`` on."""
    agent = _get_agent()
    if agent is None or suppressed.get() or current_request() is not None:
        return None
    try:
        request = start(agent, *read(raw), kind=kind)
        if request is not None:
            request.raw = raw
        return request
    except Exception:
        return None


def start(agent, method, path, headers, scheme="http", host=None, query="", client=None,
          kind=ServedRequest):
    """A ``kind`` (a ServedRequest) for this request, its span started; None when the
    request is not to be traced (an ignored path)."""
    config = agent.config
    path = path or "/"
    prefixes = config.ignore_paths
    if prefixes and path.startswith(prefixes):
        return None
    method = method or "GET"
    known = method if method in METHODS else "_OTHER"
    tracer = agent.tracer
    span = tracer.start_server_span(known, headers if TRACEPARENT in headers else None)
    attributes = span.attributes
    attributes["http.request.method"] = known
    if known != method:
        attributes["http.request.method_original"] = method
    attributes["url.path"] = path
    attributes["url.scheme"] = scheme
    if host:
        attributes["server.address"] = host_only(host)
    user_agent = headers.get("User-Agent")
    if user_agent:
        attributes["user_agent.original"] = user_agent
    if config.send_default_pii and client:
        attributes["client.address"] = client
    request = kind(agent, tracer, span, method)
    request.path = path
    request.headers = headers
    request.query = query or ""
    request.scheme = scheme
    request.host = host or ""
    request.client = client
    return request
