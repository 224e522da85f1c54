"""Tornado, server and client.

Server: every request a ``RequestHandler`` serves is a SERVER span through the one request
lifecycle (``spyglass.web.native``), from routing to the end of ``_execute`` (the handler's
``prepare``, its method and ``finish``), named by the URL spec that routed it (its pattern,
``/users/([0-9]+)``), continuing the incoming context. An exception the handler raises is
reported before Tornado logs it and answers 500; ``HTTPError`` and ``Finish`` are responses,
not errors.

Client: ``AsyncHTTPClient.fetch`` (and the blocking ``HTTPClient``, which runs it) is a
CLIENT span, redirects included, ended with the response. The trace context goes into the
per-fetch copy of the headers Tornado makes itself (where it adds ``Host`` and
``User-Agent``) and comes out of it again when the fetch is done, so an ``HTTPRequest``
sent twice carries each fetch's own; the app's headers object is never changed.
"""
from ._http import OutboundHTTP
from ._patch import Patch, Supports
from ..errors import capture
from ..errors.scope import current_request
from ..web import native

SUPPORTS = Supports("tornado", "6.0")
TIMING = "tornado"
PATCHES = (
    Patch("tornado.web", "RequestHandler", _execute="traced_execute",
          _handle_request_exception="reporting_exception"),
    Patch("tornado.httpclient", "AsyncHTTPClient", fetch="traced_fetch"),
)
setup = OutboundHTTP.setup_for(TIMING)  # the client's: spans, context, scrubbing


# -- server ---------------------------------------------------------------------------------

class TornadoRequest(native.ServedRequest):
    pass


def traced_execute(original, shared):
    async def _execute(self, transforms, *args, **kwargs):
        trace = _begin(self)
        if trace is None:
            return await original(self, transforms, *args, **kwargs)
        with trace:
            result = await original(self, transforms, *args, **kwargs)
        trace.status_code = self.get_status()
        trace.finish()
        return result

    return _execute


def reporting_exception(original, shared):
    from tornado.web import Finish, HTTPError

    def _handle_request_exception(self, e):
        if not isinstance(e, (HTTPError, Finish)):
            request = current_request()
            if isinstance(request, TornadoRequest):
                capture.capture_unhandled(e, request)
        return original(self, e)

    return _handle_request_exception


def _begin(handler):
    trace = native.begin(TornadoRequest, handler.request, _read)
    if trace is not None:
        try:
            trace.route = _url_spec(handler.application.default_router, type(handler),
                                    handler.request)
        except Exception:
            pass  # named by its method alone
    return trace


def _read(request):
    return (request.method, request.path, request.headers, request.protocol, request.host,
            request.query, request.remote_ip)


def _url_spec(router, handler_class, request, depth=8):
    """The pattern of the rule that routes ``request`` to ``handler_class`` (nested routers
    searched), without the ``$`` Tornado adds; None if none does (Tornado's 404)."""
    for rule in getattr(router, "rules", ()):
        target = rule.target
        if target is handler_class:
            if rule.matcher.match(request) is not None:
                regex = getattr(rule.matcher, "regex", None)
                return regex.pattern.rstrip("$") if regex is not None else None
        elif depth and hasattr(target, "rules") and rule.matcher.match(request) is not None:
            found = _url_spec(target, handler_class, request, depth - 1)
            if found is not None:
                return found
    return None


# -- client ---------------------------------------------------------------------------------

def traced_fetch(original, http):
    from tornado.httpclient import HTTPRequest
    from tornado.httputil import HTTPHeaders

    def fetch(self, request, raise_error=True, **kwargs):
        given = isinstance(request, HTTPRequest)
        started = None if given and kwargs else _start(http, request, kwargs)  # else refused
        if started is None:
            return original(self, request, raise_error, **kwargs)
        added = None
        try:
            if not given:  # as fetch makes it
                request, kwargs = HTTPRequest(url=request, **kwargs), {}
            # What fetch does first, so that the context goes into a copy, not the app's.
            request.headers = HTTPHeaders(request.headers)
            added = http.add_context(started, request.headers)
            future = original(self, request, raise_error, **kwargs)
        except BaseException as error:
            if added:
                http.remove_context(request.headers, added)
            http.finish(started, error=error if isinstance(error, Exception) else None)
            raise
        started = http.release(started)  # the fetch goes on in its own time
        sent = request.headers  # fetch's own copy, which carries the context

        def done(future):
            http.remove_context(sent, added)
            if future.cancelled():
                http.finish(started)
                return
            error = future.exception()
            if error is None:
                http.finish(started, future.result().code)
            else:
                code = getattr(error, "code", None)  # HTTPClientError: the response's
                http.finish(started, code if isinstance(code, int) and code < 599 else None,
                            error)

        future.add_done_callback(done)
        return future

    return fetch


def _start(http, request, kwargs):
    method = getattr(request, "method", None) or kwargs.get("method") or "GET"
    url = getattr(request, "url", None) or request
    return http.start(method, url)
