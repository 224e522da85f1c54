"""aiohttp, client and server.

Client: every request of a ``ClientSession`` (``get``, ``post``, ``request``,
``aiohttp.request``: all go through ``_request``) is a CLIENT span, redirects included,
ended when the response's headers are in (with the status of a ``raise_for_status`` error);
the trace context goes out in a ``CIMultiDict`` made from the app's headers (what aiohttp
makes of any headers it is given: order and repeated fields as without the sensor), never
over one of the three headers the app or the session's defaults set. When no span starts,
the app's headers are passed on as they are.

Server: every request an ``Application`` handles (``web.run_app``, ``AppRunner``,
``gunicorn -k aiohttp.GunicornWebWorker``, the test server) is a SERVER span through the one
request lifecycle (``spyglass.web.native``), from routing through middlewares and handler,
named by its resource's route template (``/users/{id}``, sub-application prefixes
included), continuing the incoming context. An ``HTTPException`` the handler raises is a
response (its status), not an error; any other exception is reported and marks the span.
"""
from ._http import OutboundHTTP
from ._patch import Patch, Supports
from ..web import native

SUPPORTS = Supports("aiohttp", "3.8")
TIMING = "aiohttp"
PATCHES = (
    Patch("aiohttp.client", "ClientSession", _request="traced_request"),
    Patch("aiohttp.web_app", "Application", _handle="traced_handle"),
)
setup = OutboundHTTP.setup_for(TIMING)  # the client's: spans, context, scrubbing


# -- client ---------------------------------------------------------------------------------

def traced_request(original, http):
    async def _request(self, method, str_or_url, **kwargs):
        with http.sending(method, _full_url(self, str_or_url, kwargs.get("params"))) as call:
            outgoing = _headers_with_context(http, call, self, kwargs.get("headers"))
            if outgoing is not None:
                kwargs["headers"] = outgoing
            try:
                response = await original(self, method, str_or_url, **kwargs)
            except Exception as error:
                status = getattr(error, "status", None)  # raise_for_status's response
                if isinstance(status, int):
                    call.status = status
                raise
            call.status = response.status
        return response

    return _request


def _headers_with_context(http, call, session, headers):
    """When a span started: the app's headers as aiohttp would make them (a ``CIMultiDict``:
    order and repeated fields kept) plus the trace headers that neither they nor the
    session's defaults have; else, or if that cannot be made, None (the app's go out)."""
    if call.started is None:
        return None
    from multidict import CIMultiDict

    try:
        outgoing = CIMultiDict(headers or ())
    except Exception:
        http.calls.failed()
        return None
    defaults = getattr(session, "headers", None) or ()
    for name in http.add_context(call.started, outgoing):
        if name in defaults:
            del outgoing[name]
    return outgoing


def _full_url(session, str_or_url, params):
    """The URL requested, with the session's base URL and the ``params`` aiohttp adds."""
    try:
        build = getattr(session, "_build_url", None)
        url = build(str_or_url) if build is not None else str_or_url
        if params:
            url = url.extend_query(params)
        return str(url)
    except Exception:
        return str(str_or_url)


# -- server ---------------------------------------------------------------------------------

class AiohttpRequest(native.ServedRequest):
    def fail(self, exc):
        self.read_route()
        status = getattr(exc, "status", None)
        if isinstance(status, int) and _is_http_exception(exc):
            self.status_code = status  # a response raised: its status says how it went
            self.finish()
            return
        native.ServedRequest.fail(self, exc)

    def respond(self, response):
        self.status_code = getattr(response, "status", 0) or 0
        self.read_route()
        self.finish()

    def read_route(self):
        try:
            match_info = self.raw.match_info
            resource = match_info.route.resource if match_info is not None else None
            if resource is None:
                return
            template = resource.canonical
            if _is_prefix_resource(resource):  # static files under a prefix
                template = template.rstrip("/") + "/{filename}"
            self.route = template or "/"
        except Exception:
            pass  # named by its method alone


def traced_handle(original, shared):
    async def _handle(self, request):
        trace = _begin(request)
        if trace is None:
            return await original(self, request)
        with trace:
            response = await original(self, request)
        trace.respond(response)
        return response

    return _handle


def _begin(request):
    return native.begin(AiohttpRequest, request, _read)


def _read(request):
    return (request.method, request.path, request.headers, request.scheme, request.host,
            request.query_string, request.remote)


_kinds = None


def _is_http_exception(exc):
    return isinstance(exc, _aiohttp_kinds()[0])


def _is_prefix_resource(resource):
    prefix, subapp = _aiohttp_kinds()[1:]
    return isinstance(resource, prefix) and not isinstance(resource, subapp)


def _aiohttp_kinds():
    global _kinds
    if _kinds is None:
        from aiohttp import web_exceptions, web_urldispatcher as dispatcher

        _kinds = (web_exceptions.HTTPException, dispatcher.PrefixResource,
                  dispatcher.PrefixedSubAppResource)
    return _kinds
