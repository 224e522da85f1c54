"""The ASGI adapter of the request lifecycle: ``app = spyglass.asgi.middleware(app)``.

A pure ASGI middleware (not Starlette's ``BaseHTTPMiddleware``): it passes ``receive``
through untouched and only watches the messages the app sends, so streaming responses,
background tasks and the app's own exceptions behave exactly as without it. Starlette
and FastAPI get it automatically (``spyglass.instrument.starlette``), outermost.

The span ends when the last body chunk has been sent, so background tasks that run
afterwards do not count in the request's duration; a 5xx response's span ends when the
app returns instead, so the exception Starlette re-raises after sending its 500 is
recorded on it. Only ``http`` scopes are traced; ``websocket`` and ``lifespan`` pass.
Per-request options: ``spyglass.set_request_options(...)`` inside the request, or
``spyglass.*`` keys the app sets in the scope (``scope["spyglass.view_name"] = ...``).

A request is named by the route Starlette's router matched (FastAPI's too), else by
``middleware(app, route=hook)``'s ``hook(scope)`` (the route template or None, asked when
the request is done), else by its method alone, without ``http.route``: a 404, and a 405
(Starlette's partial match, the path matched but not the method), have no route.
"""
from . import METHODS, RequestTrace, carried_options, error_block, hooked_route, host_only
from .. import agent as agent_module
from ..errors.scope import current_request
from ..trace.context import suppressed

_get_agent = agent_module.get


def middleware(app, route=None):
    """Wrap an ASGI app so that every HTTP request is traced. ``route``: ``route(scope)``
    -> the request's route template or None, asked when the request is done."""
    return SpyglassMiddleware(app, route)


class ASGIRequest(RequestTrace):
    host = ""
    route_hook = None  # the middleware's ``route=``: scope -> route template

    def __init__(self, agent, tracer, span, method, scope):
        RequestTrace.__init__(self, agent, tracer, span, method)
        self.scope = scope
        self.root_path = scope.get("root_path", "")

    def read_route(self):
        """Starlette and FastAPI leave the matched route in the scope (with the mount
        prefixes in ``root_path``), also one that matched the path but not the method
        (answered 405), which is no match. Else the middleware's hook names it."""
        scope = self.scope
        route = scope.get("route")
        path = getattr(route, "path", None)
        if isinstance(path, str):
            methods = getattr(route, "methods", None)
            if not methods or scope.get("method") in methods:
                prefix = scope.get("root_path", "")[len(self.root_path):]
                template = prefix + path
                if type(route).__name__ == "Mount":  # an app mounted as a whole: static files …
                    template = template.rstrip("/") + "/{path}"
                self.route = template or "/"
                return
        if self.route_hook is not None:
            hook, self.route_hook = self.route_hook, None  # asked once
            self.route = hooked_route(hook, scope)

    def current_options(self):
        return carried_options(self.scope, self.options)

    def fail(self, exc):
        self.read_route()
        RequestTrace.fail(self, exc)

    def describe(self, scrubber):
        scope = self.scope
        headers = [(name.decode("latin-1"), value.decode("latin-1"))
                   for name, value in scope.get("headers") or ()]
        query = (scope.get("query_string") or b"").decode("latin-1")
        url = f"{scope.get('scheme', 'http')}://{self.host}{self.path}"
        client = scope.get("client")
        return error_block(self, scrubber, url, query, headers, client[0] if client else None)


def start(agent, scope):
    """An ASGIRequest with its span started; None when the request is not to be traced."""
    config = agent.config
    path = scope.get("path") or "/"
    prefixes = config.ignore_paths
    if prefixes and path.startswith(prefixes):
        return None
    method = scope.get("method") or "GET"
    known = method if method in METHODS else "_OTHER"
    host = user_agent = None
    has_context = False
    for name, value in scope.get("headers") or ():
        if name == b"host":
            host = value
        elif name == b"user-agent":
            user_agent = value
        elif name == b"traceparent":
            has_context = True
    tracer = agent.tracer
    span = tracer.start_server_span(known, scope["headers"] if has_context else None)
    attributes = span.attributes
    attributes["http.request.method"] = known
    if known != method:
        attributes["http.request.method_original"] = method
    attributes["url.path"] = path
    attributes["url.scheme"] = scope.get("scheme", "http")
    request = ASGIRequest(agent, tracer, span, method, scope)
    request.path = path
    if host is not None:
        request.host = host.decode("latin-1")
        attributes["server.address"] = host_only(request.host)
    elif scope.get("server"):
        attributes["server.address"] = str(scope["server"][0])
    if user_agent is not None:
        attributes["user_agent.original"] = user_agent.decode("latin-1")
    client = scope.get("client")
    if config.send_default_pii and client:
        attributes["client.address"] = client[0]
    return request


class SpyglassMiddleware:
    def __init__(self, app, route=None):
        self.app = app
        self.route_hook = route

    async def __call__(self, scope, receive, send):
        app = self.app
        if scope.get("type") != "http":
            return await app(scope, receive, send)
        agent = _get_agent()
        if agent is None or suppressed.get() or current_request() is not None:
            return await app(scope, receive, send)
        try:
            request = start(agent, scope)
        except Exception:
            request = None
        if request is None:
            return await app(scope, receive, send)
        request.route_hook = self.route_hook

        async def traced_send(message):
            kind = message.get("type")
            if kind == "http.response.start":
                request.status_code = message.get("status", 0)
            await send(message)
            if (kind == "http.response.body" and not message.get("more_body", False)
                    and request.status_code < 500):
                request.read_route()
                request.finish()

        with request:  # an exception after the response (a background task) is reported too
            await app(scope, receive, traced_send)
        if not request.finished:
            request.read_route()
            request.finish()

